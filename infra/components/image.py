"""The container image: an ECR repository and the Kedro project built into it.

Tags: every build is pushed under an immutable, content-addressed tag
(``build-<hash of the build inputs>``); the registry build cache lives under
the one mutable tag ``buildcache``. Hence ``IMMUTABLE_WITH_EXCLUSION``: a tag
can never be moved to other content, except the cache, which BuildKit
rewrites on every build. A moving tag such as ``latest`` would leave the
previous build untagged, and the untagged-image rule below would then delete
an image that older job-definition revisions (and redrives of executions
started before the change) still reference by digest.

Job definitions never use the tag: they use ``ref`` (``repo@sha256:...``), so
every change to the image is a new job-definition revision.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.config import REPO_ROOT
from infra.errors import UserError
from infra.kedro_project import REQUIREMENTS_FILES as REQUIREMENTS

INFRA_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DOCKERFILE = INFRA_DIR / "Dockerfile"
DEFAULT_IGNORE = INFRA_DIR / ".dockerignore"
RUNTIME_DIR = REPO_ROOT / "runtime"
# BuildKit applies ``<Dockerfile>.dockerignore`` next to the Dockerfile; the
# default pair is staged here so it applies to any project directory.
STAGING_DIR = REPO_ROOT / "build" / ".image"

PLATFORM = docker_build.Platform.LINUX_AMD64
TAG_PREFIX = "build-"
CACHE_TAG = "buildcache"


@dataclass(frozen=True)
class BuildInputs:
    """Everything the build depends on, resolved before any resource exists."""

    context: Path
    dockerfile: Path
    requirements: str  # relative to the context
    tag: str  # content-addressed, e.g. build-0123456789abcdef


def build_inputs(project_dir: Path) -> BuildInputs:
    """The project's own Dockerfile if it has one, else the default; ``UserError`` if unusable."""
    own = project_dir / "Dockerfile"
    requirements = next((r for r in REQUIREMENTS if (project_dir / r).is_file()), None)
    if not own.is_file() and requirements is None:
        raise UserError(
            f"{project_dir} has neither requirements.txt nor src/requirements.txt; the default "
            "image installs the project's dependencies from one of them (or add a Dockerfile "
            "to the project that installs them and the kedro-batch runtime)"
        )
    if own.is_file():
        dockerfile = own
        ignore = next(
            (
                p
                for p in (project_dir / "Dockerfile.dockerignore", project_dir / ".dockerignore")
                if p.is_file()
            ),
            None,
        )
    else:
        dockerfile = _stage_default()
        ignore = DEFAULT_IGNORE
    patterns = _ignore_patterns(ignore.read_text(encoding="utf-8")) if ignore else []
    digest = hashlib.sha256()
    digest.update(dockerfile.read_bytes())
    digest.update(f"{PLATFORM.value}\0{requirements}\0".encode())
    _hash_tree(digest, project_dir, patterns)
    _hash_tree(digest, RUNTIME_DIR, [])
    return BuildInputs(
        context=project_dir,
        dockerfile=dockerfile,
        requirements=requirements or REQUIREMENTS[0],
        tag=f"{TAG_PREFIX}{digest.hexdigest()[:16]}",
    )


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
        build_on_preview: bool,
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
        cache = repository.repository_url.apply(lambda url: f"{url}:{CACHE_TAG}")
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(
                location=_relative(build.context),
                named={"runtime": docker_build.ContextArgs(location=_relative(RUNTIME_DIR))},
            ),
            dockerfile=docker_build.DockerfileArgs(location=_relative(build.dockerfile)),
            build_args={"REQUIREMENTS": build.requirements},
            platforms=[PLATFORM],
            tags=[repository.repository_url.apply(lambda url: f"{url}:{build.tag}")],
            push=True,
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
                        image_manifest=True,  # ECR rejects BuildKit's own cache manifest type
                        oci_media_types=True,
                        mode=docker_build.CacheMode.MAX,  # cache the dependency layers too
                    )
                )
            ],
            build_on_preview=build_on_preview,
            opts=child,
        )
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn
        self.ref = image.ref
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "ref": self.ref,
            }
        )


# --- build inputs ------------------------------------------------------------------


def _stage_default() -> Path:
    """Stage the default Dockerfile with its ignore file beside it (rewritten only on change)."""
    STAGING_DIR.mkdir(parents=True, exist_ok=True)
    for source, target in (
        (DEFAULT_DOCKERFILE, STAGING_DIR / "Dockerfile"),
        (DEFAULT_IGNORE, STAGING_DIR / "Dockerfile.dockerignore"),
    ):
        content = source.read_bytes()
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)
    return STAGING_DIR / "Dockerfile"


def _relative(path: Path) -> str:
    """Paths in resource inputs relative to the repo (the program's working directory).

    Absolute paths would differ between a laptop and CI and show up as a diff
    in every preview.
    """
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path.resolve())


def _ignore_patterns(text: str) -> list[list[str]]:
    """``.dockerignore`` patterns as path segments.

    With an exception (``!pattern``) nothing is excluded from the hash: the
    tag must change whenever the image may, and hashing more than Docker
    sends only costs an occasional needless rebuild.
    """
    lines = [line.strip() for line in text.splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    if any(p.startswith("!") for p in patterns):
        return []
    return [[s for s in os.path.normpath(p).lstrip("/").split("/") if s] for p in patterns]


def _hash_tree(digest: hashlib._Hash, root: Path, patterns: Sequence[Sequence[str]]) -> None:
    for relative in _files(root, patterns):
        path = root / relative
        info = path.lstat()
        link = stat.S_ISLNK(info.st_mode)
        content = os.readlink(path).encode() if link else path.read_bytes()
        executable = bool(info.st_mode & stat.S_IXUSR)
        digest.update(f"{root.name}/{relative}\0{executable}\0{len(content)}\0".encode())
        digest.update(content)


def _files(root: Path, patterns: Sequence[Sequence[str]]) -> Iterator[str]:
    """Files under ``root`` that Docker would send, in a stable order."""
    for directory, dirs, files in os.walk(root):
        base = Path(directory).relative_to(root).parts
        dirs[:] = sorted(d for d in dirs if not _ignored([*base, d], patterns))
        for name in sorted(files):
            if not _ignored([*base, name], patterns):
                yield "/".join([*base, name])


def _ignored(parts: Sequence[str], patterns: Sequence[Sequence[str]]) -> bool:
    return any(_match(pattern, parts) for pattern in patterns)


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Docker's matching, segment by segment: ``*`` stays within one, ``**`` spans any."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])
