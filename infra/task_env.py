"""The project's environment, built like the image's, on this machine.

The default image installs the project's requirements file and then the
kedro-batch runtime into a bare Python, and nothing else. Loading the project
(``synth``, ``preview``) and running its tasks (``local-run``) in kedro-batch's
own virtualenv would instead see every package that happens to be installed
there, so a module the requirements forget would pass here and fail in the
container. This module builds that environment once per content and reuses it:

    <cache>/envs/<key>/   key = hash(requirements files, runtime sources, Python)

``<cache>`` is ``$KEDRO_BATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/kedro-batch``,
else ``~/.cache/kedro-batch``. A cached environment is used without running any
installer. Builds use ``uv`` (seconds instead of pip's minute, from its own
cache) and hold a file lock, so concurrent runs build one environment once; an
environment is used only once its completion marker exists, so an interrupted
build is never mistaken for a finished one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.config import REPO_ROOT
from infra.errors import UserError

# Where the default image looks for the project's requirements, in this order.
REQUIREMENTS = ("requirements.txt", "src/requirements.txt")
RUNTIME_DIR = REPO_ROOT / "runtime"
# Bump when the way environments are built changes: old ones are then rebuilt.
FORMAT = "1"
_COMPLETE = ".kedro-batch-complete"
# Build output and caches in runtime/ are not sources: they must not change the key.
_NOT_SOURCES = frozenset({"__pycache__", "build", "dist", ".pytest_cache", ".mypy_cache"})
# Option lines of a requirements file that name another file to read.
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)[\s=]+(\S+)")
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


@dataclass(frozen=True)
class TaskEnv:
    """A Python environment that tasks (and the project loader) run in."""

    python: Path
    requirements: Path | None  # None: kedro-batch's own interpreter (no requirements file)

    @property
    def bin(self) -> Path:
        return self.python.parent

    def describe(self) -> str:
        if self.requirements is None:
            return "kedro-batch's own environment (the project has no requirements file)"
        shown = os.path.relpath(self.requirements)
        return f"an environment of {shown} + the kedro-batch runtime, like the image's"


def requirements_file(project: Path) -> Path | None:
    """The project's requirements file, the one the default image installs."""
    return next((project / r for r in REQUIREMENTS if (project / r).is_file()), None)


def cache_dir() -> Path:
    explicit = os.environ.get("KEDRO_BATCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kedro-batch"


def env_key(requirements: Path, runtime: Path = RUNTIME_DIR) -> str:
    """Content hash of everything the environment is built from."""
    digest = hashlib.sha256(f"kedro-batch-env {FORMAT}\0".encode())
    interpreter = (platform.python_implementation(), platform.python_version(), platform.machine())
    digest.update("\0".join(interpreter).encode())
    for path in _requirement_files(requirements):
        digest.update(f"\0{path.name}\0".encode() + path.read_bytes())
    for path in _sources(runtime):
        digest.update(f"\0{path.relative_to(runtime).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:20]


def task_env(project: Path) -> TaskEnv:
    """The project's environment: cached, or built now (one line on stderr says so).

    Without a requirements file (a project with its own Dockerfile may install
    its dependencies otherwise) there is nothing to build from: kedro-batch's
    own interpreter is used, as before.
    """
    requirements = requirements_file(project)
    if requirements is None:
        return TaskEnv(python=Path(sys.executable), requirements=None)
    target = cache_dir() / "envs" / env_key(requirements)
    python = target / "bin" / "python"
    if not (target / _COMPLETE).is_file():
        with _locked(target.with_suffix(".lock")):
            if not (target / _COMPLETE).is_file():  # another process may have built it
                _build(target, requirements)
    return TaskEnv(python=python, requirements=requirements)


def environ(env: TaskEnv, base: dict[str, str]) -> dict[str, str]:
    """``base`` as a process in ``env`` should see it: its ``bin`` first on ``PATH``
    and nothing that would point Python at kedro-batch's own packages."""
    result = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if env.requirements is not None:
        result["VIRTUAL_ENV"] = str(env.bin.parent)
    result["PATH"] = os.pathsep.join([str(env.bin), base.get("PATH", os.defpath)])
    return result


def missing_module(log: str) -> str | None:
    """The module a failed task could not import, if that is why it failed."""
    found = _MISSING_MODULE.findall(log)
    return found[-1] if found else None


def missing_module_message(module: str, requirements: str | None, where: str) -> str:
    """One line naming the module, the requirements file and the fix."""
    top = module.split(".")[0]
    if requirements is None:
        return (
            f"{where} imports {top!r}, which is not installed; add it to the project's "
            "requirements.txt (the default image installs that file and nothing else)"
        )
    return (
        f"{where} imports {top!r}, which {requirements} does not install; add the "
        "distribution that provides it there (the image installs that file and nothing else)"
    )


# --- building ---------------------------------------------------------------------


def _build(target: Path, requirements: Path) -> None:
    from uv import find_uv_bin

    uv = find_uv_bin()
    print(
        f"building the project environment from {requirements} (once; cached in {target})",
        file=sys.stderr,
    )
    shutil.rmtree(target, ignore_errors=True)  # what an interrupted build left
    run = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(target)}
    run.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="kedro-batch-runtime-") as tmp:
        # A throwaway copy, as the Dockerfile does: building must not write
        # build/ or egg-info into the checkout.
        runtime = Path(tmp) / "runtime"
        shutil.copytree(RUNTIME_DIR, runtime, ignore=_ignore_non_sources)
        python = str(target / "bin" / "python")
        steps = [
            ([uv, "venv", "--quiet", "--python", sys.executable, str(target)], None),
            # Two steps like the image: the project's file, then the runtime on top.
            ([uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements)],
             requirements),
            ([uv, "pip", "install", "--quiet", "--python", python, str(runtime)], None),
        ]  # fmt: skip
        for command, culprit in steps:
            proc = subprocess.run(command, env=run, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                shutil.rmtree(target, ignore_errors=True)
                reason = _last_line(proc.stderr) or f"exit status {proc.returncode}"
                what = f"installing {culprit}" if culprit else "building it"
                raise UserError(
                    f"could not build the project environment: {what} failed: {reason}; "
                    + (
                        "fix that file (the image installs it the same way)"
                        if culprit
                        else "check that uv and Python work here"
                    )
                )
    (target / _COMPLETE).write_text(f"{requirements}\n", encoding="utf-8")


def _last_line(text: str) -> str:
    """The most telling line of an installer's error: its last non-empty one,
    without the tree-drawing characters uv puts in front."""
    lines = [
        line.strip(" \u2502\u2570\u2500\u25b6\u00d7\u256d\u252c\u251c")
        for line in text.splitlines()
    ]
    return next((line for line in reversed(lines) if line), "")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released on close, or when the process dies
        yield


def _requirement_files(requirements: Path) -> list[Path]:
    """The file and every file it includes (``-r``/``-c``), each once."""
    seen: list[Path] = []
    pending = [requirements.resolve()]
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _INCLUDE.match(line)
            if match:
                pending.append((path.parent / match.group(1)).resolve())
    return seen


def _sources(root: Path) -> list[Path]:
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _not_source(d))
        found += [Path(directory) / f for f in sorted(files) if not _not_source(f)]
    return found


def _not_source(name: str) -> bool:
    return name in _NOT_SOURCES or name.endswith((".egg-info", ".pyc"))


def _ignore_non_sources(_directory: str, names: list[str]) -> set[str]:
    return {n for n in names if _not_source(n)}
