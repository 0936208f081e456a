"""The image tag: the same for the same image, new whenever pulumi-docker-build rebuilds.

ECR's tags are immutable here, so a rebuild pushed under a tag that exists
is refused (``tag invalid: ... cannot be overwritten``), and a tag that
changes without a reason rebuilds, re-registers every job definition and
updates every state machine on each deploy. pulumi-docker-build rebuilds
when any input of the image changes or its hash of the build contexts does:
file paths, contents and full modes, under the Dockerfile's ignore file, for
the main and the named contexts alike.
"""

from __future__ import annotations

import compileall
import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.components import image
from infra.components.image import BuildSettings, build_inputs
from infra.config import REPO_ROOT
from infra.dockerignore import IgnoreRules, context_files, read_patterns
from infra.errors import UserError

# --- .dockerignore as BuildKit reads it ---------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["data"], "data/raw/sales.csv", True),
        (["data/"], "data", True),
        (["/build"], "build/lib/x.py", True),
        (["*.py"], "nodes.py", True),
        (["*.py"], "src/nodes.py", False),  # "*" stays within one segment
        (["**/*.py"], "src/pkg/nodes.py", True),
        (["**/__pycache__/"], "src/pkg/__pycache__/nodes.cpython-311.pyc", True),
        (["**/__pycache__/"], "__pycache__/x.pyc", True),
        (["**/*.py[cod]"], "a/b.pyc", True),
        (["docs/**"], "docs/a/b.md", True),
        (["docs/**"], "docsx", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[ab].txt"], "b.txt", True),
        (["**foo"], "barfoo", True),  # moby's suffix match, quirk included
        (["data", "!data/keep.csv"], "data/keep.csv", False),
        (["data", "!data/keep.csv"], "data/other.csv", True),
        (["*.md", "!README.md"], "README.md", False),
        (["!README.md", "*.md"], "README.md", True),  # the last match wins
        (["conf/local", "!conf/local/.gitkeep"], "conf/local/.gitkeep", False),
        (["src", "!src/pkg", "src/pkg/secret"], "src/pkg/secret/k", True),
    ],
)
def test_ignore_rules_follow_moby_patternmatcher(patterns, path, excluded):
    assert IgnoreRules(read_patterns("\n".join(patterns))).excluded(path) is excluded


def test_ignore_files_drop_comments_blanks_and_leading_slashes():
    text = "# data\n\n  data/ \n!/keep.csv\n/build/\nsrc/../dist\n"
    assert read_patterns(text) == ["data", "!keep.csv", "build", "dist"]


def test_a_walk_enters_an_excluded_directory_only_for_a_reinclusion(tmp_path: Path):
    for name in ("data/keep.csv", "data/big.csv", "notes/a.md", "src/x.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    rules = IgnoreRules(read_patterns("data\nnotes\n!data/keep.csv\n"))
    assert list(context_files(tmp_path, rules)) == ["data/keep.csv", "src/x.py"]
    assert rules.may_reinclude_under("data") and not rules.may_reinclude_under("notes")


# --- the tag --------------------------------------------------------------------------


def checkout(destination: Path) -> Path:
    """A fresh clone of this repository's committed state, as CI and laptops get it."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", str(REPO_ROOT), str(destination)], check=True
    )
    subprocess.run(["git", "checkout", "-q", head], cwd=destination, check=True)
    return destination


def tag(root: Path, **options: bool) -> str:
    return build_inputs(root / "example", root=root, **options).tag


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("clones")
    return checkout(base / "a"), checkout(base / "b")


def test_two_clones_touched_and_imported_get_one_tag(clones):
    first, second = clones
    assert tag(first) == tag(second)
    # What a checkout, an editable install and an import leave behind: new
    # timestamps, bytecode (whose header holds the sources' mtimes), build
    # output and egg-info. None of it reaches the image.
    for path in second.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1, 1))
    assert compileall.compile_dir(second / "runtime", quiet=1)
    assert compileall.compile_dir(second / "example" / "src", quiet=1)
    (second / "runtime" / "src" / "kedro_batch_runtime.egg-info").mkdir(exist_ok=True)
    (second / "runtime" / "src" / "kedro_batch_runtime.egg-info" / "PKG-INFO").write_text("x")
    (second / "runtime" / "build" / "lib").mkdir(parents=True, exist_ok=True)
    (second / "runtime" / "build" / "lib" / "stale.py").write_text("x = 1\n")
    (second / "example" / "data" / "09_extra.csv").write_text("a,b\n")
    assert tag(second) == tag(first)
    shutil.rmtree(second / "runtime" / "src" / "kedro_batch_runtime" / "__pycache__")
    assert tag(second) == tag(first)


def test_a_change_the_image_gets_changes_the_tag(clones, tmp_path: Path):
    _, root = clones
    before = tag(root)
    runtime_source = root / "runtime" / "src" / "kedro_batch_runtime" / "__init__.py"
    original = runtime_source.read_bytes()
    runtime_source.write_bytes(original + b"\n# changed\n")
    try:
        assert tag(root) != before  # the named context counts like the main one
    finally:
        runtime_source.write_bytes(original)
    assert tag(root) == before


def test_umask_002_and_022_checkouts_get_different_tags(clones):
    """Chosen: the tag follows full file modes. pulumi-docker-build hashes each
    file's full mode (Go's FileMode.String()) and BuildKit's COPY keeps modes,
    so a group-writable checkout (umask 002) rebuilds an image that differs
    from a umask-022 one; its tag must differ too, or the push is refused."""
    _, root = clones
    before = tag(root)
    source = next((root / "example" / "src").rglob("*.py"))
    mode = source.stat().st_mode
    source.chmod(mode | stat.S_IWGRP)
    try:
        assert tag(root) != before
    finally:
        source.chmod(mode)
    assert tag(root) == before


def test_every_setting_the_provider_diffs_is_in_the_tag(clones):
    _, root = clones
    build = build_inputs(root / "example", root=root)
    contexts = (build.context, root / "runtime")

    def tag_with(settings: BuildSettings) -> str:
        return image._tag(settings, build.dockerfile, build.ignore_file, *contexts)

    assert tag_with(build.settings) == build.tag
    for field in dataclasses.fields(BuildSettings):
        value = getattr(build.settings, field.name)
        if isinstance(value, bool):
            changed: object = not value
        elif isinstance(value, str):
            changed = value + "x"
        else:
            changed = (*value, ("x", "y"))
        other = dataclasses.replace(build.settings, **{field.name: changed})
        assert tag_with(other) != build.tag, field.name
    assert tag(root, build_on_preview=True) != tag(root)


def test_the_dockerfile_and_the_ignore_file_count(tmp_path: Path):
    project = tmp_path / "project"
    (project / "notes").mkdir(parents=True)
    (project / "requirements.txt").write_text("kedro\n")
    install = image.RUNTIME_INSTALL
    (project / "Dockerfile").write_text(f"FROM python:3.11-slim\n{install}\n")
    own = build_inputs(project, root=REPO_ROOT).tag
    (project / "Dockerfile").write_text(f"FROM python:3.12-slim\n{install}\n")
    assert build_inputs(project, root=REPO_ROOT).tag != own
    # A file the ignore file re-includes counts; the others it excludes do not.
    (project / ".dockerignore").write_text("notes\n!notes/keep.md\n")
    (project / "notes" / "keep.md").write_text("a")
    (project / "notes" / "scratch.md").write_text("b")
    ignored = build_inputs(project, root=REPO_ROOT).tag
    (project / "notes" / "scratch.md").write_text("c")
    assert build_inputs(project, root=REPO_ROOT).tag == ignored
    (project / "notes" / "keep.md").write_text("d")
    assert build_inputs(project, root=REPO_ROOT).tag != ignored


# --- a project's own Dockerfile (issue 12, item 7) ------------------------------------

TINY = REPO_ROOT / "tests" / "fixtures" / "projects" / "runtime_tiny"
DOCKERFILES = REPO_ROOT / "tests" / "fixtures" / "dockerfiles"


def own_dockerfile_project(case: str, destination: Path) -> Path:
    project = destination / "project"
    shutil.copytree(TINY, project)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy(DOCKERFILES / case / name, project / name)
    return project


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        ("installs_runtime", None),
        ("no_runtime", "does not install the kedro-batch runtime"),
        ("ignores_src", ".dockerignore excludes src,"),
        ("ignores_conf_base", ".dockerignore excludes conf/base,"),
    ],
)
def test_an_own_dockerfile_is_checked_without_docker(case, refusal, tmp_path: Path):
    project = own_dockerfile_project(case, tmp_path)
    if refusal is None:
        build = build_inputs(project)
        assert build.dockerfile == project / "Dockerfile"
        assert image.describe(build).startswith("image: ")
        assert "(the project's own) with " in image.describe(build)
        return
    with pytest.raises(UserError, match=re.escape(refusal)) as refused:
        build_inputs(project)
    assert "\n" not in str(refused.value)


def synth_cli(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "infra", "synth", "--stack", "dev", "--project-dir",
         str(project), "-c", "kedroEnv=", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_synth_names_the_dockerfile_and_refuses_one_without_the_runtime(tmp_path: Path):
    good = synth_cli(own_dockerfile_project("installs_runtime", tmp_path / "good"), tmp_path / "a")
    assert good.returncode == 0, good.stderr[-2000:]
    (line,) = [x for x in good.stdout.splitlines() if x.startswith("image: ")]
    assert "Dockerfile (the project's own) with " in line and ".dockerignore" in line
    bad = synth_cli(own_dockerfile_project("no_runtime", tmp_path / "bad"), tmp_path / "b")
    assert bad.returncode == 2
    (message,) = bad.stderr.strip().splitlines()
    assert "Dockerfile does not install the kedro-batch runtime" in message
    assert "Traceback" not in bad.stderr
