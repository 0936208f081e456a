"""The container image: an ECR repository and the Kedro project built into it.

Tags: every build is pushed under an immutable, content-addressed tag
(``build-<hash of the build inputs>``); the registry build cache lives under
the one mutable tag ``buildcache``. Hence ``IMMUTABLE_WITH_EXCLUSION``: a tag
can never be moved to other content, except the cache, which BuildKit
rewrites on every build. A moving tag such as ``latest`` would leave the
previous build untagged, and the untagged-image rule below would then delete
an image that older job-definition revisions (and redrives of executions
started before the change) still reference by digest.

Job definitions never use the tag: they use the pushed digest
(``repo@sha256:...``, the form Batch and ECS document; pulumi-docker-build's
own ``ref`` is ``repo:tag@sha256:...``), so every change to the image is a new
job-definition revision and a tag can never point a job at other content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.config import REPO_ROOT
from infra.dockerignore import (
    DEFAULT_IGNORE,
    IgnoreRules,
    context_files,
    ignore_file,
    read_patterns,
)
from infra.errors import UserError
from infra.task_env import REQUIREMENTS  # local-run's environment reads the same

INFRA_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DOCKERFILE = INFRA_DIR / "Dockerfile"
RUNTIME = "runtime"  # the runtime package, relative to the checkout
RUNTIME_CONTEXT = "runtime"  # its named build context (see infra/Dockerfile)
# BuildKit applies ``<Dockerfile>.dockerignore`` next to the Dockerfile; the
# default pair is staged here (relative to the checkout) so it applies to any
# project directory.
STAGING = "build/.image"

PLATFORM = docker_build.Platform.LINUX_AMD64
TAG_PREFIX = "build-"
CACHE_TAG = "buildcache"
# A requirement on pyspark itself or a kedro-datasets Spark extra.
PYSPARK = re.compile(
    r"^\s*(pyspark\b|kedro[-_]datasets\[[^\]]*spark)", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True)
class BuildSettings:
    """What the image resource receives, besides the repository it pushes to.

    pulumi-docker-build rebuilds and pushes when any of these changes (its
    ``Diff``), and when its hash of the build context does; the tag is made
    from all of them, so a rebuild never pushes under a tag that exists.
    The registry (address and user name) is left out: it is the
    repository's, and a new repository holds no tags yet.
    """

    context: str  # paths relative to the repository, as the resource gets them
    named_contexts: tuple[tuple[str, str], ...]
    dockerfile: str
    build_args: tuple[tuple[str, str], ...]
    platforms: tuple[str, ...]
    build_on_preview: bool
    push: bool = True
    cache_tag: str = CACHE_TAG
    cache_mode: str = "max"  # the dependency layers too
    cache_image_manifest: bool = True  # ECR rejects BuildKit's own cache manifest type
    cache_oci_media_types: bool = True


@dataclass(frozen=True)
class BuildInputs:
    """Everything the build depends on, resolved before any resource exists."""

    context: Path
    dockerfile: Path
    ignore_file: Path | None  # the .dockerignore BuildKit applies, if any
    requirements: str  # relative to the context
    settings: BuildSettings
    tag: str  # build-<16 hex>: a function of the settings and the files sent

    @property
    def build_args(self) -> dict[str, str]:
        return dict(self.settings.build_args)

    @property
    def java(self) -> bool:
        """Whether the default image installs a JRE (the project uses Spark)."""
        return "JAVA" in self.build_args


def build_inputs(
    project_dir: Path,
    *,
    build_on_preview: bool = False,
    java: bool = False,
    root: Path = REPO_ROOT,
) -> BuildInputs:
    """The project's own Dockerfile if it has one, else the default; ``UserError`` if unusable.

    ``root`` is the kedro-batch checkout (its ``runtime/`` is the named context
    ``runtime``); resource paths are relative to it, as Pulumi runs there.
    ``java``: the plan found Spark datasets; the default image then gets a JRE,
    as it does when the requirements name ``pyspark``.
    """
    own = project_dir / "Dockerfile"
    requirements = next((r for r in REQUIREMENTS if (project_dir / r).is_file()), None)
    if not own.is_file() and requirements is None:
        raise UserError(
            f"{project_dir} has neither requirements.txt nor src/requirements.txt; the default "
            "image installs the project's dependencies from one of them (or add a Dockerfile "
            "to the project that installs them and the kedro-batch runtime)"
        )
    dockerfile = own if own.is_file() else _stage_default(root / STAGING)
    ignore = ignore_file(dockerfile, project_dir)
    if own.is_file():
        check_own_dockerfile(own, ignore)
        java = False  # the project's Dockerfile installs what the project needs
    else:
        text = (project_dir / requirements).read_text(encoding="utf-8") if requirements else ""
        java = java or bool(PYSPARK.search(text))
    runtime = root / RUNTIME
    settings = BuildSettings(
        context=_relative(project_dir, root),
        named_contexts=((RUNTIME_CONTEXT, _relative(runtime, root)),),
        dockerfile=_relative(dockerfile, root),
        build_args=(
            ("REQUIREMENTS", requirements or REQUIREMENTS[0]),
            *((("JAVA", "1"),) if java else ()),
        ),
        platforms=(PLATFORM.value,),
        build_on_preview=build_on_preview,
    )
    return BuildInputs(
        context=project_dir,
        dockerfile=dockerfile,
        ignore_file=ignore,
        requirements=requirements or REQUIREMENTS[0],
        settings=settings,
        tag=_tag(settings, dockerfile, ignore, project_dir, runtime),
    )


# What a project's own Dockerfile must do, and what its image needs from the project.
INSTALLS_RUNTIME = re.compile(r"from=runtime\b|kedro[-_]batch[-_]runtime")
NEEDED = ("pyproject.toml", "src", "conf/base")
RUNTIME_INSTALL = (
    "RUN --mount=type=bind,from=runtime,target=/tmp/runtime,rw pip install /tmp/runtime"
)


def check_own_dockerfile(dockerfile: Path, ignore: Path | None) -> None:
    """What can be checked without Docker: the image gets the kedro-batch
    runtime (every job runs ``kedro-batch-task``), and the ignore file keeps
    the parts of the project Kedro needs at run time."""
    if not INSTALLS_RUNTIME.search(dockerfile.read_text(encoding="utf-8")):
        raise UserError(
            f"{dockerfile} does not install the kedro-batch runtime, which provides every "
            f"job's command (kedro-batch-task); add `{RUNTIME_INSTALL}` (the named build "
            "context `runtime` is kedro-batch's runtime/), or delete the Dockerfile to use "
            "the default image"
        )
    if ignore is None:
        return
    rules = IgnoreRules(read_patterns(ignore.read_text(encoding="utf-8")))
    for needed in NEEDED:
        if rules.excluded(needed):
            raise UserError(
                f"{ignore} excludes {needed}, which the image needs to run the project's "
                f"nodes; remove the pattern that matches {needed} (or re-include it with "
                f"!{needed})"
            )


def describe(build: BuildInputs) -> str:
    """One line for ``synth``: the Dockerfile and ignore file the image is built with."""
    if build.dockerfile.parent.name == Path(STAGING).name:
        return f"image: infra/Dockerfile (the default) with infra/.dockerignore, tag {build.tag}"
    ignore = _relative(build.ignore_file, REPO_ROOT) if build.ignore_file else "no ignore file"
    own = _relative(build.dockerfile, REPO_ROOT)
    return f"image: {own} (the project's own) with {ignore}, tag {build.tag}"


def lifecycle_policy(keep_images: int) -> dict[str, object]:
    """Keep the last ``keep_images`` builds; drop superseded cache manifests after a day.

    Rules are in ascending priority, as ECR returns them (no perpetual diff).
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Expire untagged images (superseded build cache) after 1 day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the last {keep_images} builds",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [TAG_PREFIX],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }


class ProjectImage(pulumi.ComponentResource):
    """ECR repository, its lifecycle policy, and the project image pushed to it."""

    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    ref: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        build: BuildInputs,
        *,
        keep_images: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:ProjectImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            f"{name}-repo",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                    filter=CACHE_TAG, filter_type="WILDCARD"
                )
            ],
            # Images are build output, reproducible from the project: never
            # let them block `pulumi destroy`.
            force_delete=True,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(keep_images)),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        settings = build.settings
        cache = repository.repository_url.apply(lambda url: f"{url}:{settings.cache_tag}")
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(
                location=settings.context,
                named={
                    key: docker_build.ContextArgs(location=location)
                    for key, location in settings.named_contexts
                },
            ),
            dockerfile=docker_build.DockerfileArgs(location=settings.dockerfile),
            build_args=dict(settings.build_args),
            platforms=[docker_build.Platform(p) for p in settings.platforms],
            tags=[repository.repository_url.apply(lambda url: f"{url}:{build.tag}")],
            push=settings.push,
            registries=[
                docker_build.RegistryArgs(
                    address=repository.repository_url,
                    username=token.user_name,
                    password=token.password,
                )
            ],
            cache_from=[
                docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache))
            ],
            cache_to=[
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=cache,
                        image_manifest=settings.cache_image_manifest,
                        oci_media_types=settings.cache_oci_media_types,
                        mode=docker_build.CacheMode(settings.cache_mode),
                    )
                )
            ],
            build_on_preview=settings.build_on_preview,
            opts=child,
        )
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.ref = pulumi.Output.all(repository.repository_url, image.digest).apply(
            lambda a: f"{a[0]}@{a[1]}"
        )
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "ref": self.ref,
            }
        )


# --- build inputs ------------------------------------------------------------------


def _stage_default(staging: Path) -> Path:
    """Stage the default Dockerfile with its ignore file beside it (rewritten only on change)."""
    staging.mkdir(parents=True, exist_ok=True)
    for source, target in (
        (DEFAULT_DOCKERFILE, staging / "Dockerfile"),
        (DEFAULT_IGNORE, staging / "Dockerfile.dockerignore"),
    ):
        content = source.read_bytes()
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)
    return staging / "Dockerfile"


def _relative(path: Path, root: Path) -> str:
    """Paths in resource inputs relative to the checkout (the program's working directory).

    Absolute paths would differ between a laptop and CI and show up as a diff
    in every preview.
    """
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _tag(settings: BuildSettings, dockerfile: Path, ignore: Path | None, *contexts: Path) -> str:
    """``build-`` and 16 hex digits of a hash over everything that makes
    pulumi-docker-build rebuild: the settings, the Dockerfile's content, and
    every file each context sends with its path, full mode and content (its
    context hash covers the same; the one ignore file applies to every context,
    as there). Timestamps, bytecode and whatever the ignore file leaves out
    never count."""
    rules = IgnoreRules(read_patterns(ignore.read_text(encoding="utf-8")) if ignore else [])
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(settings), sort_keys=True).encode())
    digest.update(hashlib.sha256(dockerfile.read_bytes()).digest())
    for index, context in enumerate(contexts):
        for relative in context_files(context, rules):
            path = context / relative
            info = path.lstat()
            digest.update(f"{index}\0{relative}\0{stat.filemode(info.st_mode)}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(path).encode() + b"\0")
            if path.is_file():  # a symlink is followed, as the hash of the provider does
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{TAG_PREFIX}{digest.hexdigest()[:16]}"
