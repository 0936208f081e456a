"""Load a Kedro project into the plain graph model.

Kedro keeps its pipeline registry, settings and project package in
process-wide state (``bootstrap_project`` rewrites ``sys.path`` and module
globals), so a second project loaded in the same process could see the
first one's registry. Loading therefore happens in a fresh interpreter
(``python -m infra.kedro_project``) that prints the model as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from infra.errors import UserError
from infra.graph import DatasetInfo, NodeInfo, PipelineGraph, is_parameter

QUIET_KEDRO_ENV = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
_USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class KedroProject:
    """A loaded project: where it is, its package, and the pipelines asked for."""

    path: Path
    package_name: str
    kedro_version: str
    registered: tuple[str, ...]
    pipelines: dict[str, PipelineGraph]


def load_project(
    project_dir: str | os.PathLike[str],
    pipelines: Sequence[str] = ("__default__",),
    env: str | None = None,
) -> KedroProject:
    """Load ``pipelines`` of the Kedro project at ``project_dir``.

    Raises ``UserError`` naming the culprit when the directory is not a Kedro
    project, its registry fails to import, or a pipeline is unknown or empty.
    """
    return _load_project(Path(project_dir).resolve(), tuple(pipelines), env)


@cache
def _load_project(path: Path, pipelines: tuple[str, ...], env: str | None) -> KedroProject:
    # Cached: synth validates before running the program, which plans again.
    if not path.is_dir():
        raise UserError(
            f"Kedro project directory {path} does not exist; set kedro-batch:projectDir "
            "(or --project-dir) to the folder that holds pyproject.toml"
        )
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file() or "[tool.kedro]" not in pyproject.read_text(encoding="utf-8"):
        raise UserError(
            f"{path} is not a Kedro project (no [tool.kedro] in {pyproject.name}); "
            "point kedro-batch:projectDir at a project created by `kedro new`"
        )
    cmd = [sys.executable, "-m", "infra.kedro_project", str(path), *pipelines]
    if env:
        cmd += ["--env", env]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET_KEDRO_ENV, "PYTHONPATH": _infra_root()},
        check=False,
    )
    if proc.returncode == _USER_ERROR_EXIT:
        raise UserError(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"loading {path} failed:\n{proc.stderr}")
    data = json.loads(proc.stdout)
    return KedroProject(
        path=path,
        package_name=data["package_name"],
        kedro_version=data["kedro_version"],
        registered=tuple(data["registered"]),
        pipelines={p["name"]: PipelineGraph.from_json(p) for p in data["pipelines"]},
    )


def _infra_root() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    extra = os.environ.get("PYTHONPATH")
    return root if not extra else os.pathsep.join([root, extra])


# --- everything below runs inside the loader subprocess -------------------


def _dataset_facts(catalog: Any, names: Sequence[str], project: Path) -> dict[str, DatasetInfo]:
    from kedro.io.core import get_protocol_and_path
    from kedro_batch_runtime.credentials import referenced, unresolved

    resolver = catalog.config_resolver
    facts: dict[str, DatasetInfo] = {}
    for name in names:
        in_catalog = name in catalog
        config = unresolved(resolver.resolve_pattern(name)) if in_catalog else {}
        type_ = catalog.get_type(name) if in_catalog else None
        filepath = config.get("filepath") or config.get("path")
        protocol = None
        if isinstance(filepath, str):
            protocol = get_protocol_and_path(filepath)[0]
            # Kedro makes local paths absolute; the layout users wrote is relative.
            if protocol == "file" and Path(filepath).is_relative_to(project):
                filepath = Path(filepath).relative_to(project).as_posix()
        facts[name] = DatasetInfo(
            name=name,
            in_catalog=in_catalog,
            type=str(type_ or "kedro.io.memory_dataset.MemoryDataset"),
            filepath=filepath if isinstance(filepath, str) else None,
            protocol=protocol,
            versioned=bool(config.get("versioned", False)),
            credentials=referenced(config),
        )
    return facts


def _catalog(context: Any) -> Any:
    """The project's catalog, built without reading any credentials.

    Planning needs dataset facts, never secrets: the credentials files may
    not exist here, or hold ``${oc.env:...}`` for variables only the jobs
    have. Every ``credentials:`` reference stays a name.
    """
    from kedro.framework.project import settings
    from kedro_batch_runtime.credentials import references

    return settings.DATA_CATALOG_CLASS.from_config(context.config_loader["catalog"], references())


def _graph(name: str, pipeline: Any, catalog: Any, project: Path) -> PipelineGraph:
    nodes = tuple(
        NodeInfo(
            name=n.name,
            namespace=n.namespace,
            tags=frozenset(n.tags),
            inputs=tuple(n.inputs),
            outputs=tuple(n.outputs),
            func=f"{getattr(n.func, '__module__', '?')}.{getattr(n.func, '__qualname__', '?')}",
        )
        for n in pipeline.nodes
    )
    parents = {
        n.name: frozenset(p.name for p in ps) for n, ps in pipeline.node_dependencies.items()
    }
    datasets = sorted(d for d in pipeline.datasets() if not is_parameter(d))
    return PipelineGraph(
        name=name,
        nodes=nodes,
        parents={n.name: parents.get(n.name, frozenset()) for n in nodes},
        datasets=_dataset_facts(catalog, datasets, project),
    )


def _registry_error(project: Path, package: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if str(project) in f.filename]
    where = (
        f"{inside[-1].filename}:{inside[-1].lineno}" if inside else f"{package}.pipeline_registry"
    )
    return (
        f"the pipeline registry of {project.name} failed to import at {where}: "
        f"{type(exc).__name__}: {exc}; fix the project so `kedro registry list` works"
    )


def _load(path: Path, wanted: Sequence[str], env: str | None) -> dict[str, Any]:
    import kedro
    from kedro.framework.project import pipelines as registry
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    metadata = bootstrap_project(path)
    try:
        registered = sorted(registry.keys())
    except Exception as exc:  # the user's code: any failure is theirs to fix
        raise UserError(_registry_error(path, metadata.package_name, exc)) from exc
    for name in wanted:
        if name not in registered:
            raise UserError(
                f"pipeline {name!r} is not registered in {metadata.package_name}; "
                f"registered pipelines: {', '.join(registered) or '(none)'}"
            )
        if not registry[name].nodes:
            raise UserError(
                f"pipeline {name!r} of {metadata.package_name} has no nodes; "
                "register nodes under it or deploy another pipeline (kedro-batch:pipelines)"
            )
    from kedro.config import MissingConfigException

    try:
        with KedroSession.create(project_path=path, env=env) as session:
            catalog = _catalog(cast(KedroSession, session).load_context())
    except MissingConfigException as exc:
        where = f"conf/{env}" if env else "conf/"
        raise UserError(
            f"Kedro could not read the configuration of {path.name} ({where}): {exc}; "
            "create the folder or set kedro-batch:kedroEnv to an existing environment"
        ) from None
    graphs = [_graph(name, registry[name], catalog, path) for name in wanted]
    return {
        "package_name": metadata.package_name,
        "kedro_version": kedro.__version__,
        "registered": registered,
        "pipelines": [g.to_json() for g in graphs],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.kedro_project")
    parser.add_argument("project_dir", type=Path)
    parser.add_argument("pipelines", nargs="*", default=["__default__"])
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    os.environ.update(QUIET_KEDRO_ENV)
    # Kedro and the user's project log to stdout; the JSON must be alone there.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        result = _load(args.project_dir.resolve(), args.pipelines, args.env)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return _USER_ERROR_EXIT
    finally:
        sys.stdout = real_stdout
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
