"""Projects the team did not write: their mistakes in one line, in an environment
built like the image's (tests/fixtures/projects/project_mistakes, node_import_error,
forgotten_requirement)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from infra import task_env as task_envs
from infra.__main__ import main
from infra.kedro_project import VERBOSE_ENV, load_project

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "projects"
MISTAKES = FIXTURES / "project_mistakes"
FORGOTTEN = FIXTURES / "forgotten_requirement"
QUIET = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}


def synth(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    """``python -m infra synth`` (in this process), its outputs under a temp folder
    unless ``args`` name one."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        code = main(["synth", "--project-dir", str(project), "--out", out, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _not_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    # main(["--verbose"]) sets it for the loader's subprocess; never leak it.
    monkeypatch.delenv(VERBOSE_ENV, raising=False)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            "typo_type",
            "catalog entry 'doubled' (conf/typo_type/catalog.yml): type 'pandas.CSVDatset' "
            "does not exist; did you mean pandas.CSVDataset?",
        ),
        (
            "bad_yaml",
            "conf/bad_yaml/catalog.yml line 8, column 12: invalid YAML (did not find expected "
            "',' or ']'); fix the syntax there",
        ),
        (
            "missing_dependency",
            "catalog entry 'doubled' (conf/missing_dependency/catalog.yml): type "
            "polars.CSVDataset needs module 'polars', which requirements.txt does not install; "
            "add kedro-datasets[polars-csvdataset] to it",
        ),
        (
            "no_catalog",
            "neither conf/base nor conf/no_catalog of project_mistakes has a catalog file "
            "(catalog.yml); add conf/base/catalog.yml",
        ),
    ],
)
def test_a_project_mistake_is_one_line_naming_file_entry_and_fix(
    env: str, message: str, capsys: pytest.CaptureFixture[str]
):
    code, _, err = synth(capsys, MISTAKES, "-c", f"kedroEnv={env}")
    assert code == 2
    # The first synth of a fresh machine says it builds the environment first.
    lines = [line for line in err.splitlines() if not line.startswith("building the project")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}")
    assert "Traceback" not in err


def test_verbose_adds_the_traceback_and_keeps_the_line_last(capsys: pytest.CaptureFixture[str]):
    code, _, err = synth(capsys, MISTAKES, "-c", "kedroEnv=typo_type", "--verbose")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "DatasetError" in err  # Kedro's own exception, from the loader's subprocess
    assert err.strip().splitlines()[-1].startswith("error: catalog entry 'doubled'")


def test_synth_says_which_kedro_env_and_environment_it_loaded(
    capsys: pytest.CaptureFixture[str],
):
    code, out, _ = synth(capsys, MISTAKES, "-c", "kedroEnv=good")
    assert code == 0
    assert "loaded project_mistakes: Kedro env 'good' (conf/base + conf/good)" in out
    assert "requirements.txt + the kedro-batch runtime, like the image's" in out
    project = load_project(FORGOTTEN)
    assert project.kedro_env == "local"  # Kedro's default run environment


def test_an_import_error_in_a_node_module_names_the_file_and_line(
    capsys: pytest.CaptureFixture[str],
):
    code, _, err = synth(capsys, FIXTURES / "node_import_error", "-c", "kedroEnv=")
    assert code == 2
    assert err.strip() == (
        "error: src/node_import_error/nodes.py:3: No module named 'node_import_error.helpers' "
        "in the project's own package; fix the import (a misspelt module, or a file missing "
        "from src/)"
    )


def test_a_module_the_requirements_forget_fails_synth_when_imported_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """boto3 is in kedro-batch's own venv; the project is loaded in its own
    environment, so its eager import fails here as it would in the image."""
    project = tmp_path / "forgotten_requirement"
    shutil.copytree(FORGOTTEN, project)
    nodes = project / "src" / "forgotten_requirement" / "nodes.py"
    nodes.write_text("import boto3  # noqa\n" + nodes.read_text())
    code, _, err = synth(capsys, project, "-c", "kedroEnv=")
    assert code == 2
    assert err.strip() == (
        "error: src/forgotten_requirement/nodes.py:1 imports 'boto3', which requirements.txt "
        "does not install; add the distribution that provides it there (the image installs "
        "that file and nothing else)"
    )


def test_a_module_the_requirements_forget_fails_its_node_in_local_run(tmp_path: Path):
    env = {**os.environ, **QUIET, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "infra", "local-run", "--project-dir", str(FORGOTTEN),
         "-c", "kedroEnv="],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: node publish imports 'boto3', which requirements.txt does not install; add the "
        "distribution that provides it there (the image installs that file and nothing else)"
    )


# --- the environment itself ------------------------------------------------------


def _project(tmp_path: Path, requirements: str = "kedro\n") -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "requirements.txt").write_text(requirements)
    return project


def test_the_key_follows_requirements_includes_and_runtime_sources_only(tmp_path: Path):
    project = _project(tmp_path, "-r base.txt\npandas\n")
    (project / "base.txt").write_text("kedro\n")
    runtime = tmp_path / "runtime"
    shutil.copytree(ROOT / "runtime", runtime, ignore=shutil.ignore_patterns("*.egg-info"))
    requirements = project / "requirements.txt"
    key = task_envs.env_key(requirements, runtime)
    (runtime / "src" / "kedro_batch_runtime" / "__pycache__").mkdir(exist_ok=True)
    (runtime / "src" / "kedro_batch_runtime" / "__pycache__" / "cli.pyc").write_bytes(b"x")
    (runtime / "build").mkdir()
    (runtime / "build" / "junk").write_text("x")
    assert task_envs.env_key(requirements, runtime) == key  # build output is not a source
    (project / "base.txt").write_text("kedro>=1.7\n")
    included = task_envs.env_key(requirements, runtime)
    assert included != key  # an included file is part of the requirements
    (runtime / "src" / "kedro_batch_runtime" / "cli.py").write_text("# changed\n")
    assert task_envs.env_key(requirements, runtime) not in (key, included)


def test_a_cached_environment_runs_no_installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEDRO_BATCH_CACHE_DIR", str(tmp_path / "cache"))
    builds: list[Path] = []

    def build(target: Path, requirements: Path) -> None:
        builds.append(target)
        time.sleep(0.2)  # long enough for the other threads to queue on the lock
        (target / "bin").mkdir(parents=True)
        (target / task_envs._COMPLETE).write_text("")

    monkeypatch.setattr(task_envs, "_build", build)
    project = _project(tmp_path)
    found: list[task_envs.TaskEnv] = []
    threads = [
        threading.Thread(target=lambda: found.append(task_envs.task_env(project))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1  # four concurrent runs, one build
    assert len({env.python for env in found}) == 1
    task_envs.task_env(project)
    assert len(builds) == 1  # and a later run only looks


def test_an_interrupted_build_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEDRO_BATCH_CACHE_DIR", str(tmp_path / "cache"))
    project = _project(tmp_path)
    target = tmp_path / "cache" / "envs" / task_envs.env_key(project / "requirements.txt")
    (target / "bin").mkdir(parents=True)  # a build killed before its marker
    builds: list[Path] = []
    monkeypatch.setattr(task_envs, "_build", lambda target, _req: builds.append(target))
    task_envs.task_env(project)
    assert builds == [target]


def test_a_requirement_that_cannot_install_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KEDRO_BATCH_CACHE_DIR", str(tmp_path / "cache"))
    project = _project(tmp_path, "kedro>=1.7,<1.0\n")  # no version can satisfy it
    failed = r"installing .*requirements\.txt failed: .*kedro"
    with pytest.raises(task_envs.UserError, match=failed):
        task_envs.task_env(project)
    assert not list((tmp_path / "cache" / "envs").glob("*/bin"))  # nothing half-built is kept


def test_without_a_requirements_file_the_own_interpreter_is_used(tmp_path: Path):
    env = task_envs.task_env(tmp_path)
    assert env.requirements is None and env.python == Path(sys.executable)


# --- node names ------------------------------------------------------------------

ODD = FIXTURES / "odd_names"


def test_every_node_name_kedro_accepts_runs_through_synth_and_local_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    import json

    from infra.local_run import Options, local_run

    # One job per node: each name is then the whole element after --nodes.
    one = ("-c", "kedroEnv=", "-c", "grouping=none")
    code, _, err = synth(capsys, ODD, *one, "--out", str(tmp_path / "synth"))
    assert code == 0, err
    definition = (tmp_path / "synth" / "__default__.asl.json").read_text(encoding="utf-8")
    commands = re.findall(r'"--nodes",\s*("(?:[^"\\]|\\.)*")', definition)
    assert sorted(json.loads(c) for c in commands) == sorted(
        ["-leading-dash", "-h", "--two-dashes.and.dots", "été", "a_very_long_node_name_" + "x" * 98]
    )
    keep = tmp_path / "bucket"
    overrides = {"projectDir": str(ODD), "kedroEnv": "", "grouping": "none"}
    report = local_run(Options(overrides=overrides, keep=keep))
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}
    assert len(report["nodes"]) == 5
    (written,) = [d for d in report["datasets"] if d["name"] == "données.résumé"]
    summary = keep / written["uri"].split("/", 3)[3]
    assert summary.read_text(encoding="utf-8").split() == ["total,rows", "18,3"]
    assert json.loads(json.dumps(report))  # the report survives non-ASCII names


def test_a_comma_in_a_node_name_is_refused_at_synth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    project = tmp_path / "odd_names"
    shutil.copytree(ODD, project)
    registry = project / "src" / "odd_names" / "pipeline_registry.py"
    registry.write_text(
        registry.read_text().replace(
            'return {"__default__": pipeline}',
            'return {"__default__": Pipeline(pipeline, namespace="a,b", inputs="numbers")}',
        )
    )
    code, _, err = synth(capsys, project, "-c", "kedroEnv=")
    assert code == 2
    assert err.startswith("error: node 'a,b.-leading-dash' of pipeline '__default__' has a comma")
    assert "rename the namespace" in err and len(err.strip().splitlines()) == 1
