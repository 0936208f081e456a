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
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from kedro_batch_runtime.access import partition_type

from infra.dockerignore import DEFAULT_IGNORE, image_ignore_file
from infra.errors import UserError
from infra.graph import DatasetInfo, NodeInfo, PipelineGraph, is_parameter
from infra.task_env import REQUIREMENTS, environ, missing_module_message, task_env
from infra.tracking import MlflowFacts

QUIET_KEDRO_ENV = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
VERBOSE_ENV = "KEDRO_BATCH_VERBOSE"
_USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class LeftOut:
    """Configuration of the deployed pipelines that the image does not get.

    The image leaves ``conf/local`` out (``infra/.dockerignore``, or the
    project's own ignore file), so the jobs run, and the plan is made,
    without it; a user who keeps an entry there sees it work with ``kedro
    run`` and vanish on AWS. ``entries`` are catalog entries (names or
    factory patterns) that deployed datasets use, ``overridden`` those of
    them the image has another definition of, ``parameters`` top-level
    parameter keys that deployed nodes read.
    """

    files: tuple[str, ...] = ()  # project-relative paths of the files left out
    entries: tuple[str, ...] = ()
    overridden: frozenset[str] = frozenset()
    parameters: tuple[str, ...] = ()
    ignore_file: str = ""

    def warning(self) -> str | None:
        """One line for ``synth`` and ``preview``: what is left out, and the fix."""
        if not self.entries and not self.parameters:
            return None
        entries = [
            f"{e} (another definition applies)" if e in self.overridden else e for e in self.entries
        ]
        what = " and ".join(
            part
            for part in (
                f"catalog entries {', '.join(entries)}" if entries else "",
                f"parameters {', '.join(self.parameters)}" if self.parameters else "",
            )
            if part
        )
        return (
            f"{', '.join(self.files)} do not reach the image ({self.ignore_file} leaves them "
            f"out): the jobs run without their {what}, and so does this plan; move them to "
            "conf/base, or to a conf/<env> folder and set kedro-batch:kedroEnv to it"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "files": list(self.files),
            "entries": list(self.entries),
            "overridden": sorted(self.overridden),
            "parameters": list(self.parameters),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], ignore_file: str) -> LeftOut:
        return cls(
            files=tuple(data.get("files") or ()),
            entries=tuple(data.get("entries") or ()),
            overridden=frozenset(data.get("overridden") or ()),
            parameters=tuple(data.get("parameters") or ()),
            ignore_file=ignore_file,
        )


@dataclass(frozen=True)
class KedroProject:
    """A loaded project: where it is, its package, and the pipelines asked for."""

    path: Path
    package_name: str
    kedro_version: str
    registered: tuple[str, ...]
    pipelines: dict[str, PipelineGraph]
    kedro_env: str = "local"  # the configuration environment loaded (conf/base + conf/<env>)
    python: str = ""  # the environment it was loaded in (task_env.TaskEnv.describe)
    mlflow: MlflowFacts = field(default_factory=MlflowFacts)
    left_out: LeftOut = field(default_factory=LeftOut)  # configuration the image lacks


def load_project(
    project_dir: str | os.PathLike[str],
    pipelines: Sequence[str] = ("__default__",),
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> KedroProject:
    """Load ``pipelines`` of the Kedro project at ``project_dir``.

    The configuration is the image's: the project's ``conf/`` without what
    the image's ignore file leaves out (``conf/local``), as the jobs read it.
    Raises ``UserError`` naming the culprit when the directory is not a Kedro
    project or its code or configuration fails to load (file, entry and fix
    in one line; the traceback too when ``KEDRO_BATCH_VERBOSE`` is set), or a
    pipeline is unknown or empty. ``runtime_params`` resolve
    ``${runtime_params:...}`` in the configuration as a run's would.
    """
    params = json.dumps(dict(runtime_params), sort_keys=True) if runtime_params else None
    return _load_project(Path(project_dir).resolve(), tuple(pipelines), env, params)


def loaded(project: KedroProject) -> str:
    """One line saying which configuration and environment a project was loaded with."""
    return (
        f"loaded {project.package_name}: Kedro env {project.kedro_env!r} "
        f"(conf/base + conf/{project.kedro_env}), in {project.python}"
    )


def verbose() -> bool:
    """``--verbose`` (or ``KEDRO_BATCH_VERBOSE=1``): full tracebacks of project errors."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@cache
def _load_project(
    path: Path, pipelines: tuple[str, ...], env: str | None, params: str | None
) -> KedroProject:
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
    # In the project's own environment (the image's), not kedro-batch's: what
    # imports here imports in the container, and nothing else does.
    python = task_env(path)
    cmd = [str(python.python), "-m", "infra.kedro_project", str(path), *pipelines]
    if env:
        cmd += ["--env", env]
    if params:
        cmd += ["--params", params]
    if python.requirements is not None:
        cmd += ["--requirements", str(python.requirements)]
    ignore = image_ignore_file(path)
    if ignore is not None:
        cmd += ["--ignore-file", str(ignore)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**environ(python, dict(os.environ)), **QUIET_KEDRO_ENV, "PYTHONPATH": _infra_root()},
        check=False,
    )
    if proc.returncode == _USER_ERROR_EXIT:
        if verbose():
            sys.stderr.write(proc.stderr)
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
        kedro_env=data["kedro_env"],
        python=python.describe(),
        mlflow=MlflowFacts.from_json(data["mlflow"]),
        left_out=LeftOut.from_json(data["left_out"], _shown_ignore_file(ignore, path)),
    )


def _shown_ignore_file(ignore: Path | None, project: Path) -> str:
    if ignore is None or ignore == DEFAULT_IGNORE:
        return "infra/.dockerignore"
    return ignore.relative_to(project).as_posix() if ignore.is_relative_to(project) else str(ignore)


def _infra_root() -> str:
    # Only infra/ itself: the loader's own code (plain Python, no Pulumi).
    return str(Path(__file__).resolve().parent.parent)


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
            partition_type=partition_type(config),
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


# --- project mistakes, in one line --------------------------------------------


@dataclass(frozen=True)
class _Project:
    """What a message about the project needs: where it is and what it installs."""

    path: Path
    env: str | None
    requirements: Path | None
    package: str = ""
    # Where the configuration is read: the image's copy of it (see _image_conf)
    # lives in a folder laid out like the project, ``image_root``.
    conf: Path | None = None
    image_root: Path | None = None

    def relative(self, filename: str) -> str:
        path = Path(filename)
        for root in (self.image_root, self.path):
            if root is not None and path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return filename

    @property
    def shown_requirements(self) -> str | None:
        return None if self.requirements is None else self.relative(str(self.requirements))

    def where(self, exc: BaseException) -> str:
        """``file:line`` of the innermost frame in the project's own files, or ``""``."""
        frames = traceback.extract_tb(exc.__traceback__)
        inside = [f for f in frames if Path(f.filename).is_relative_to(self.path)]
        return f"{self.relative(inside[-1].filename)}:{inside[-1].lineno}" if inside else ""


@contextmanager
def _project_code(project: _Project, doing: str) -> Iterator[None]:
    """Exceptions raised while ``doing`` come from the user's code or configuration:
    theirs to fix, so they become one line naming the file, the entry and the fix."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise UserError(_explain(exc, project, doing)) from exc


def _explain(exc: Exception, project: _Project, doing: str) -> str:
    from kedro.config import MissingConfigException
    from yaml import MarkedYAMLError

    name = f"{type(exc).__name__}: {_first_line(exc)}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return _missing_module(exc, exc.name, project, doing)
    if isinstance(exc, MarkedYAMLError):
        return _yaml_error(exc, project)
    if isinstance(exc, MissingConfigException):
        return _missing_config(str(exc), project)
    where = project.where(exc)
    return (
        f"{doing} failed{f' at {where}' if where else ''}: {name}; fix the project so "
        "`kedro run` works (--verbose shows the traceback)"
    )


def _missing_module(exc: BaseException, module: str, project: _Project, doing: str) -> str:
    where = project.where(exc) or doing
    if module.split(".")[0] == project.package:
        return (
            f"{where}: No module named {module!r} in the project's own package; fix the import "
            "(a misspelt module, or a file missing from src/)"
        )
    return missing_module_message(module, project.shown_requirements, where)


def _yaml_error(exc: Exception, project: _Project) -> str:
    # Kedro re-raises YAML errors naming the file; the cause has the position.
    cause = exc.__cause__ or exc
    found = re.search(r"file (.+?), unable to read", str(exc))
    filename = project.relative(found.group(1)) if found else "a configuration file"
    mark = getattr(cause, "problem_mark", None)
    at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(cause, "problem", None) or _first_line(exc)
    return f"{filename}{at}: invalid YAML ({problem}); fix the syntax there"


def _missing_config(message: str, project: _Project) -> str:
    env = f"conf/{project.env}" if project.env else "conf/"
    if "does not exist" in message:
        return (
            f"Kedro could not read the configuration of {project.path.name} ({env}): {message}; "
            "create the folder or set kedro-batch:kedroEnv to an existing environment"
        )
    patterns = re.search(r"glob pattern\(s\): \['([a-z_]+)", message)
    kind = patterns.group(1) if patterns else "configuration"
    where = f"conf/base nor {env}" if project.env else "conf/base nor the run environment"
    return (
        f"neither {where} of {project.path.name} has a {kind} file ({kind}.yml); "
        f"add conf/base/{kind}.yml (a conf/<env> folder only adds to or overrides conf/base)"
    )


def _dataset_type_problem(type_: str, project: _Project) -> str | None:
    """Why a catalog ``type`` does not load: a missing dependency or a misspelling."""
    import importlib

    from kedro.io.core import _DEFAULT_PACKAGES

    found_module = None
    for prefix in _DEFAULT_PACKAGES:
        module_path, _, class_name = f"{prefix}{type_}".rpartition(".")
        try:
            module = importlib.import_module(module_path)
            getattr(module, class_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and not (module_path + ".").startswith(missing + "."):
                return _missing_dependency(type_, missing, project)
            continue  # no such module under this prefix
        except AttributeError:
            # Kedro tries its own packages first: the first module found is meant.
            found_module = found_module or (prefix, module_path, module)
            continue
        except Exception as exc:  # the dataset module itself fails to import
            return f"type {type_} fails to import: {type(exc).__name__}: {_first_line(exc)}"
        return None
    if found_module is None:
        return f"type {type_!r} names no module Kedro can find; check the spelling"
    import difflib

    prefix, module_path, module = found_module
    names = [n for n in getattr(module, "__all__", dir(module)) if not n.startswith("_")]
    hint = difflib.get_close_matches(type_.rpartition(".")[2], names, n=1)
    shown = module_path.removeprefix(prefix) if prefix else module_path
    return f"type {type_!r} does not exist" + (
        f"; did you mean {shown}.{hint[0]}?" if hint else f"; {shown} has no such dataset"
    )


def _missing_dependency(type_: str, module: str, project: _Project) -> str:
    from importlib import metadata

    group, _, class_name = type_.removeprefix("kedro_datasets.").rpartition(".")
    extra = f"{group}-{class_name.lower()}"
    try:
        extras = metadata.metadata("kedro-datasets").get_all("Provides-Extra") or []
    except metadata.PackageNotFoundError:
        extras = []
    fix = f"kedro-datasets[{extra}]" if extra in extras else module.split(".")[0]
    file = project.shown_requirements or "the project's requirements.txt"
    return f"type {type_} needs module {module!r}, which {file} does not install; add {fix} to it"


def _check_dataset_types(catalog: Any, names: Sequence[str], project: _Project) -> None:
    """Load each dataset's type now, so a bad one is reported with its entry."""
    from kedro.io.core import DatasetError

    resolver = catalog.config_resolver
    for name in names:
        if name not in catalog:
            continue
        try:
            catalog.get_type(name)
        except DatasetError as exc:
            entry = resolver.match_dataset_pattern(name) or name
            type_ = resolver.resolve_pattern(name).get("type")
            reason = (
                _dataset_type_problem(type_, project) if isinstance(type_, str) else None
            ) or _first_line(exc)
            source = _entry_file(project, entry)
            raise UserError(
                f"catalog entry {entry!r}{f' ({source})' if source else ''}: {reason}"
            ) from exc


def _entry_file(project: _Project, entry: str) -> str | None:
    """The catalog file that defines ``entry`` (the run environment's wins over base)."""
    import yaml

    conf = project.conf or project.path / "conf"
    for folder in [project.env or "local", "base"]:
        for path in sorted((conf / folder).glob("**/catalog*")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(data, dict) and entry in data:
                return project.relative(str(path))
    return None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def _check_node_names(pipeline: Any, name: str) -> None:
    """Contract 4 passes a task's nodes as one comma-separated element (as ``kedro
    run --nodes`` does): Kedro allows commas in namespaces, which that cannot carry."""
    for node in pipeline.nodes:
        if "," in node.name:
            raise UserError(
                f"node {node.name!r} of pipeline {name!r} has a comma in its name (from its "
                "namespace); tasks name their nodes as one comma-separated list, so rename "
                "the namespace without commas"
            )


def _registry_error(project: _Project, exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return _missing_module(exc, exc.name, project, "the pipeline registry")
    where = project.where(exc) or f"{project.package}.pipeline_registry"
    return (
        f"the pipeline registry of {project.path.name} failed to import at {where}: "
        f"{type(exc).__name__}: {_first_line(exc)}; fix the project so `kedro registry list` works"
    )


def _mlflow_facts(
    project: _Project, conf: Path, context: Any, disabled: Sequence[str]
) -> MlflowFacts:
    """kedro-mlflow's footprint in the project: its requirements, settings and conf
    (``conf``: the configuration folder the image holds).

    ``disabled`` is the project's own ``DISABLE_HOOKS_FOR_PLUGINS``.
    """
    from kedro.config import MissingConfigException
    from kedro.framework.project import settings

    from infra.tracking import is_kedro_mlflow, requirement_names

    path = project.path
    own_dockerfile = (path / "Dockerfile").is_file()
    requirements = next((r for r in REQUIREMENTS if (path / r).is_file()), None)
    config_files = tuple(
        sorted(project.relative(str(p)) for p in conf.rglob("mlflow*.yml") if p.is_file())
    )
    loader = context.config_loader
    uri = None
    if config_files:
        from omegaconf import OmegaConf

        # The patterns kedro-mlflow adds, so the deployed env resolves as it
        # would; its ``${km.random_name:}`` (a run name) is never needed here.
        loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
        if not OmegaConf.has_resolver("km.random_name"):
            OmegaConf.register_new_resolver("km.random_name", lambda: "planning")
        try:
            server = (loader["mlflow"] or {}).get("server") or {}
        except MissingConfigException:
            server = {}
        except Exception as exc:  # the user's YAML: a resolver or syntax error is theirs
            raise UserError(
                f"Kedro could not read {config_files[0]} of {path.name}: {type(exc).__name__}: "
                f"{exc}; fix it, or set kedro-batch:mlflowTrackingUri"
            ) from None
        uri = server.get("mlflow_tracking_uri")
    return MlflowFacts(
        requirements=(
            requirement_names((path / requirements).read_text(encoding="utf-8"))
            if requirements
            else frozenset()
        ),
        requirements_file=None if own_dockerfile else requirements,
        config_files=config_files,
        hook_in_settings=any(
            type(hook).__module__.startswith("kedro_mlflow.") for hook in settings.HOOKS
        ),
        hook_disabled=any(is_kedro_mlflow(n) for n in disabled),
        uri=str(uri) if uri else None,
        env=loader.env or loader.default_run_env or "local",
    )


@dataclass(frozen=True)
class _ImageConf:
    """The project's configuration folder as the image holds it, copied to ``copy``
    (``<root>/<its path in the project>``), and what the image leaves out of it."""

    project: Path
    root: Path
    copy: Path
    source: Path
    left_out: frozenset[str]  # project-relative paths of the files the image lacks


def _image_conf(project: Path, conf: Path, ignore_file: Path, root: Path) -> _ImageConf:
    """Copy the files of ``conf`` that ``ignore_file`` lets into the image to ``root``.

    The default image creates ``conf/local`` empty (Kedro's default run
    environment must exist), so the copy has it too.
    """
    from infra.dockerignore import IgnoreRules, read_patterns

    rules = IgnoreRules(read_patterns(ignore_file.read_text(encoding="utf-8")))
    relative = conf.relative_to(project)
    copy = root / relative
    left_out = set()
    for file in sorted(p for p in conf.rglob("*") if p.is_file()):
        name = file.relative_to(project).as_posix()
        if rules.excluded(name):
            left_out.add(name)
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, root / name)
    copy.mkdir(parents=True, exist_ok=True)
    if relative.as_posix() == "conf":
        (copy / "local").mkdir(exist_ok=True)
    return _ImageConf(project, root, copy, conf, frozenset(left_out))


def _left_out(
    image: _ImageConf, loader: Any, env: str, datasets: Sequence[str], parameters: set[str]
) -> LeftOut:
    """What the files the image lacks define for the deployed pipelines: catalog
    entries their ``datasets`` use (by name or factory pattern), and the
    top-level ``parameters`` keys their nodes read (``"*"``: all of them, a
    node reads ``parameters``). Read as plain YAML: their values never matter."""
    import parse

    def used(kind: str, key: str) -> bool:
        if kind == "parameters":
            return "*" in parameters or key in parameters
        return key in datasets or ("{" in key and any(parse.parse(key, d) for d in datasets))

    found: dict[str, dict[str, list[str]]] = {"catalog": {}, "parameters": {}}  # key -> files
    for kind, keys in found.items():
        for folder in dict.fromkeys([loader.base_env, env]):
            for pattern in loader.config_patterns.get(kind, ()):
                for path in sorted((image.source / folder).glob(pattern)):
                    shown = path.relative_to(image.project).as_posix()
                    if shown in image.left_out:
                        for key in _top_level_keys(path):
                            if used(kind, key):
                                keys.setdefault(key, []).append(shown)
    image_catalog = loader["catalog"]
    files = [f for keys in found.values() for shown in keys.values() for f in shown]
    return LeftOut(
        files=tuple(dict.fromkeys(files)),
        entries=tuple(sorted(found["catalog"])),
        overridden=frozenset(e for e in found["catalog"] if e in image_catalog),
        parameters=tuple(sorted(found["parameters"])),
    )


def _top_level_keys(path: Path) -> list[str]:
    """The entries of a YAML or JSON configuration file (``_`` ones are Kedro's
    anchors, not entries); none for a file Kedro would not read or cannot parse."""
    import yaml

    if path.suffix not in (".yml", ".yaml", ".json"):
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    return [str(k) for k in data if not str(k).startswith("_")] if isinstance(data, dict) else []


def _load(
    path: Path,
    wanted: Sequence[str],
    env: str | None,
    requirements: Path | None,
    runtime_params: Mapping[str, Any] | None = None,
    ignore_file: Path | None = None,
) -> dict[str, Any]:
    """Load the project with the configuration its image holds (``ignore_file``:
    the image's ignore file; ``None``: the image gets the whole folder)."""
    with tempfile.TemporaryDirectory(prefix="kedro-batch-conf-") as tmp:
        return _load_in(path, wanted, env, requirements, runtime_params, ignore_file, Path(tmp))


def _load_in(
    path: Path,
    wanted: Sequence[str],
    env: str | None,
    requirements: Path | None,
    runtime_params: Mapping[str, Any] | None,
    ignore_file: Path | None,
    tmp: Path,
) -> dict[str, Any]:
    import kedro
    from kedro.framework.project import pipelines as registry
    from kedro.framework.project import settings
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro_batch_runtime.hooks import KEDRO_MLFLOW_NAMES, disable_plugin_hooks

    project = _Project(path=path, env=env, requirements=requirements)
    with _project_code(project, "loading the project's settings.py"):
        metadata = bootstrap_project(path)
    conf = path / settings.CONF_SOURCE
    # A folder of the project is what the image may leave parts of out; a
    # conf_source elsewhere (or an archive) reaches it as it is, or not at all.
    image = (
        _image_conf(path, conf, ignore_file, tmp)
        if ignore_file is not None and conf.is_dir() and conf.resolve().is_relative_to(path)
        else None
    )
    project = _Project(
        path,
        env,
        requirements,
        metadata.package_name,
        conf=image.copy if image else None,
        image_root=image.root if image else None,
    )
    disabled = tuple(settings.DISABLE_HOOKS_FOR_PLUGINS)
    # Planning reads the project; kedro-mlflow's hook would create an
    # experiment (a local mlruns/ folder, or a call to the tracking server).
    disable_plugin_hooks(KEDRO_MLFLOW_NAMES)
    try:
        registered = sorted(registry.keys())
    except Exception as exc:  # the user's code: any failure is theirs to fix
        raise UserError(_registry_error(project, exc)) from exc
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
        _check_node_names(registry[name], name)
    params = dict(runtime_params) if runtime_params else None
    datasets = sorted({d for n in wanted for d in registry[n].datasets() if not is_parameter(d)})
    reading = _project_code(project, "reading the project's configuration")
    # The image's configuration where the image leaves part of it out.
    conf_source = str(image.copy) if image else None
    session = KedroSession.create(path, env=env, runtime_params=params, conf_source=conf_source)
    with reading, session:
        context = cast(KedroSession, session).load_context()
        catalog = _catalog(context)
        mlflow = _mlflow_facts(project, image.copy if image else conf, context, disabled)
        # Kedro's default (settings.CONFIG_LOADER_ARGS may change it from "local").
        kedro_env = env or getattr(context.config_loader, "default_run_env", "") or "local"
        left_out = LeftOut()
        if image and image.left_out:
            used = _parameters(registry, wanted)
            left_out = _left_out(image, context.config_loader, kedro_env, datasets, used)
    _check_dataset_types(catalog, datasets, project)
    graphs = [_graph(name, registry[name], catalog, path) for name in wanted]
    return {
        "package_name": metadata.package_name,
        "kedro_version": kedro.__version__,
        "kedro_env": kedro_env,
        "registered": registered,
        "pipelines": [g.to_json() for g in graphs],
        "mlflow": mlflow.to_json(),
        "left_out": left_out.to_json(),
    }


def _parameters(registry: Any, wanted: Sequence[str]) -> set[str]:
    """Top-level parameter keys the nodes of the ``wanted`` pipelines read
    (``"*"`` when one reads them all, as ``parameters``)."""
    inputs = {i for name in wanted for i in registry[name].inputs()}
    keys = {i.removeprefix("params:").split(".")[0] for i in inputs if i.startswith("params:")}
    return keys | ({"*"} if "parameters" in inputs else set())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.kedro_project")
    parser.add_argument("project_dir", type=Path)
    parser.add_argument("pipelines", nargs="*", default=["__default__"])
    parser.add_argument("--env", default=None)
    parser.add_argument("--requirements", type=Path, default=None)
    parser.add_argument("--params", type=json.loads, default=None)
    parser.add_argument("--ignore-file", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.update(QUIET_KEDRO_ENV)
    # Kedro and the user's project log to stdout; the JSON must be alone there.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        result = _load(
            args.project_dir.resolve(),
            args.pipelines,
            args.env,
            args.requirements,
            args.params,
            args.ignore_file,
        )
    except UserError as exc:
        if verbose() and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(exc, file=sys.stderr)
        return _USER_ERROR_EXIT
    finally:
        sys.stdout = real_stdout
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
