"""Loading Kedro projects into the plain graph model."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import UserError
from infra.graph import topological_order
from infra.kedro_project import load_project

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "projects"


@pytest.fixture(scope="module")
def example():
    return load_project(ROOT / "example", ["__default__", "ingest", "features", "train", "report"])


def test_example_registers_default_and_each_modular_pipeline(example):
    assert set(example.registered) >= {"__default__", "ingest", "features", "train", "report"}
    default = example.pipelines["__default__"]
    assert len(default.nodes) >= 12
    assert {n.namespace for n in default.nodes} >= {"ingest", "features", "train", "report"}
    for name in ("ingest", "features", "train", "report"):
        assert set(example.pipelines[name].node_names) <= set(default.node_names)


def test_example_dependencies_are_a_dag_with_kedro_names(example):
    default = example.pipelines["__default__"]
    order = topological_order(default.node_names, default.parents)
    assert sorted(order) == sorted(default.node_names)
    assert all("." in n for n in default.node_names)  # namespace.name


def test_example_dataset_facts(example):
    facts = example.pipelines["__default__"].datasets
    kinds = {d.type.rsplit(".", 1)[-1] for d in facts.values()}
    assert {"CSVDataset", "ParquetDataset", "PickleDataset", "MemoryDataset"} <= kinds
    assert any(d.versioned for d in facts.values())
    memory = [d for d in facts.values() if not d.in_catalog]
    assert memory and all(d.is_memory for d in memory)
    local = [d for d in facts.values() if d.protocol == "file"]
    assert local and all(not Path(d.filepath).is_absolute() for d in local)
    assert not any(n.startswith("params:") or n == "parameters" for n in facts)


def test_default_node_names_and_namespaces():
    project = load_project(FIXTURES / "namespaced_defaults", ["__default__", "alpha"])
    names = project.pipelines["__default__"].node_names
    assert any(n.startswith("alpha.") and "__" in n for n in names)
    assert any(n.startswith("beta.") for n in names)


def test_two_projects_do_not_share_a_registry():
    first = load_project(FIXTURES / "namespaced_defaults")
    second = load_project(ROOT / "example")
    assert set(first.pipelines["__default__"].node_names).isdisjoint(
        second.pipelines["__default__"].node_names
    )
    assert first.package_name != second.package_name


@pytest.mark.parametrize(
    ("where", "pipelines", "message"),
    [
        ("does-not-exist", ["__default__"], "does not exist; set kedro-batch:projectDir"),
        ("../../../infra", ["__default__"], "is not a Kedro project"),
        ("broken_registry", ["__default__"], "pipeline_registry.py:"),
        (
            "empty_pipeline",
            ["__default__"],
            "pipeline '__default__' of empty_pipeline has no nodes",
        ),
        ("namespaced_defaults", ["gamma"], "pipeline 'gamma' is not registered"),
    ],
)
def test_project_errors_name_the_culprit(where: str, pipelines: list[str], message: str):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
        load_project(FIXTURES / where, pipelines)
    assert "\n" not in str(info.value)
