"""Loading Kedro projects into the plain graph model."""

from __future__ import annotations

import shutil
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


# --- the configuration the image holds --------------------------------------------

LOCAL_CONF = FIXTURES / "local_conf"


def test_planning_reads_the_configuration_the_image_holds_without_conf_local():
    project = load_project(LOCAL_CONF)
    datasets = project.pipelines["__default__"].datasets
    # conf/local/catalog.yml defines `scaled` and overrides `summary`; no image has it.
    assert not datasets["scaled"].in_catalog
    assert datasets["scaled"].type.endswith("MemoryDataset")
    assert datasets["summary"].filepath == "data/08_reporting/summary.csv"
    left_out = project.left_out
    assert left_out.files == ("conf/local/catalog.yml", "conf/local/parameters.yml")
    assert left_out.entries == ("scaled", "summary")  # not notebook_scratch: nothing uses it
    assert left_out.overridden == {"summary"}
    assert left_out.parameters == ("scale",)
    warning = left_out.warning()
    assert warning is not None
    assert warning.startswith(
        "conf/local/catalog.yml, conf/local/parameters.yml do not reach the image "
        "(infra/.dockerignore leaves them out): the jobs run without their catalog entries "
        "scaled, summary (another definition applies) and parameters scale"
    )
    assert "move them to conf/base, or to a conf/<env> folder and set kedro-batch:kedroEnv" in (
        warning
    )


def test_an_image_that_keeps_conf_local_is_planned_with_it(tmp_path: Path):
    from infra.components.image import RUNTIME_INSTALL

    project = tmp_path / "local_conf"
    shutil.copytree(LOCAL_CONF, project)
    # The project's own Dockerfile and ignore file: conf/local goes into this image.
    (project / "Dockerfile").write_text(f"FROM python:3.11-slim\n{RUNTIME_INSTALL}\nCOPY . .\n")
    (project / ".dockerignore").write_text("data/\n")
    loaded = load_project(project)
    datasets = loaded.pipelines["__default__"].datasets
    assert datasets["scaled"].in_catalog
    assert datasets["summary"].filepath == "data/08_reporting/local_summary.csv"
    assert loaded.left_out.warning() is None
    # An ignore file that leaves a base file out too: the image lacks `scale` altogether.
    other = shutil.copytree(LOCAL_CONF, tmp_path / "other")
    (other / "Dockerfile").write_text(f"FROM python:3.11-slim\n{RUNTIME_INSTALL}\nCOPY . .\n")
    (other / ".dockerignore").write_text("data/\nconf/base/parameters.yml\nconf/local/\n")
    left_out = load_project(other).left_out
    assert left_out.files == (
        "conf/local/catalog.yml",
        "conf/base/parameters.yml",
        "conf/local/parameters.yml",
    )
    assert (left_out.entries, left_out.parameters) == (("scaled", "summary"), ("scale",))
    assert ".dockerignore leaves them out" in (left_out.warning() or "")
