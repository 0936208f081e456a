"""What a deployment's jobs get from AWS Secrets Manager: pure rules.

Two stack settings name secrets, never values:

``kedro-batch:credentialsSecret``
    a secret whose value is a Kedro credentials document (the text of a
    ``credentials.yml``, or JSON). The job definition's ``secrets`` put it in
    ``KEDRO_BATCH_CREDENTIALS`` and the runtime merges it as the project's
    credentials (:mod:`kedro_batch_runtime.credentials`).
``kedro-batch:secretEnv``
    environment variable -> secret, for ``${oc.env:VAR}`` in that document or
    for code that reads the environment (an MLflow client, say).

ECS fetches them with the job's execution role as the container starts, so
the container makes no AWS call, and neither the image, the container
overrides, Pulumi's state nor ``synth`` output ever holds a value: only names
and ARNs. A reference is a secret name or ARN, optionally followed by Batch's
``:json-key:version-stage:version-id`` selector (fields may be empty).

Credentials files are kept out of the image (``infra/.dockerignore``), so a
deployed pipeline whose datasets refer to credentials needs the credentials
secret: :func:`check_credentials` refuses the deployment before anything is
created. Datasets that kedro-batch moves into the data bucket do not count:
the job role reads and writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kedro_batch_runtime.access import Access, decide
from kedro_batch_runtime.boundaries import storage
from kedro_batch_runtime.catalog import bucket_relative
from kedro_batch_runtime.credentials import ENV_CREDENTIALS

from infra.errors import UserError
from infra.graph import DatasetInfo, PipelineGraph

CREDENTIALS_KEY = "kedro-batch:credentialsSecret"
SECRET_ENV_KEY = "kedro-batch:secretEnv"

# Secrets Manager: names of 1-512 of these characters; ARNs add a random suffix.
_NAME = r"[A-Za-z0-9/_+=.@-]{1,512}"
_ARN = re.compile(
    rf"arn:(?P<partition>aws[a-z-]*):secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}})"
    rf":secret:(?P<name>{_NAME})"
)
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names the runtime, Kedro or Batch set themselves.
RESERVED_PREFIXES = ("KEDRO_BATCH_", "AWS_BATCH_", "ECS_")
RESERVED_NAMES = frozenset({"KEDRO_ENV", "DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY"})

# Batch refuses a job definition over 24 KiB. Its ``secrets`` are bounded
# here, leaving the rest for the image, roles, environment and log settings.
MAX_JOB_DEFINITION = 24 * 1024
SECRETS_BUDGET = 16 * 1024
# The longest ARN prefix a name resolves to, plus the random suffix ("-AbCdEf").
_ARN_OVERHEAD = len("arn:aws-us-gov:secretsmanager:ap-southeast-5:123456789012:secret:-AbCdEf")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret, by name or ARN, and optionally one JSON key or version of it."""

    secret: str
    json_key: str = ""
    version_stage: str = ""
    version_id: str = ""

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """``name``, ``arn:...:secret:name-AbCdEf`` or either with ``:json-key:stage:id``."""
        text = text.strip()
        parts = text.split(":")
        cut = 7 if text.startswith("arn:") else 1
        secret, selector = ":".join(parts[:cut]), parts[cut:]
        if text.startswith("arn:"):
            if not _ARN.fullmatch(secret):
                raise ValueError(
                    f"{text!r} is not a Secrets Manager secret ARN "
                    "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
                )
        elif not re.fullmatch(_NAME, secret):
            raise ValueError(
                f"{text!r} is not a secret name (1-512 letters, digits and /_+=.@-) or ARN"
            )
        if len(selector) > 3:
            raise ValueError(
                f"{text!r}: after the secret, Batch takes at most "
                ":json-key:version-stage:version-id"
            )
        json_key, stage, version = (*selector, "", "", "")[:3]
        if stage and version:
            raise ValueError(f"{text!r}: give a version stage or a version id, not both")
        return cls(secret, json_key, stage, version)

    @property
    def is_arn(self) -> bool:
        return self.secret.startswith("arn:")

    @property
    def region(self) -> str | None:
        """The secret's region when given by ARN (it may differ from the stack's)."""
        match = _ARN.fullmatch(self.secret)
        return match.group("region") if match else None

    def value_from(self, arn: str) -> str:
        """Batch's ``valueFrom``: the secret's full ARN, then the selector if any."""
        if not (self.json_key or self.version_stage or self.version_id):
            return arn
        return f"{arn}:{self.json_key}:{self.version_stage}:{self.version_id}"

    def __str__(self) -> str:
        return self.value_from(self.secret)


def parse_variable(name: str) -> str:
    """An environment variable ``secretEnv`` or ``environment`` may set, or
    ``ValueError`` saying why not."""
    if not _VARIABLE.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise ValueError(f"{name!r} is set by kedro-batch, Kedro or Batch; choose another name")
    if name.startswith("AWS_"):
        raise ValueError(
            f"{name!r} would replace the job role's AWS settings, the data bucket's access "
            "included; put other AWS credentials in the credentials secret and refer to them "
            "with `credentials:` in the catalog"
        )
    return name


def job_secrets(
    credentials: SecretRef | None, secret_env: Mapping[str, SecretRef]
) -> dict[str, SecretRef]:
    """Environment variable -> secret, for the job definitions' ``secrets``."""
    found = {ENV_CREDENTIALS: credentials} if credentials else {}
    return {**found, **dict(sorted(secret_env.items()))}


def check_secrets_size(secrets: Mapping[str, SecretRef]) -> None:
    """Refuse ``secrets`` that could push a job definition past Batch's 24 KiB.

    Names become ARNs only at deploy time, so each counts at its longest.
    """
    entries = [
        {"name": variable, "valueFrom": str(ref) + ("" if ref.is_arn else " " * _ARN_OVERHEAD)}
        for variable, ref in secrets.items()
    ]
    length = len(json.dumps(entries, separators=(",", ":")))
    if length > SECRETS_BUDGET:
        raise UserError(
            f"invalid config {SECRET_ENV_KEY}: {len(entries)} secrets take up to {length:,} "
            f"characters of the job definition, over the {SECRETS_BUDGET:,} kedro-batch "
            f"allows (Batch refuses job definitions over {MAX_JOB_DEFINITION:,}); put "
            "related values in one JSON secret and pick keys with :json-key::"
        )


# --- which credentials a deployment needs ------------------------------------------


def credentials_needed(
    graph: PipelineGraph, intermediates: str, access: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Credentials name -> the datasets of ``graph`` that use it inside a container.

    A dataset kedro-batch moves into the data bucket and opens there directly
    uses the job role, and its own credentials are dropped; one staged through
    the task's disk (``access``: ``kedro-batch:datasetAccess``) keeps them
    (``kedro_batch_runtime.catalog``).
    """
    needed: dict[str, list[str]] = {}
    for name, info in graph.datasets.items():
        if not info.credentials:
            continue
        kind = storage(in_catalog=info.in_catalog, type_name=info.type, filepath=info.filepath)
        moved = info.filepath and bucket_relative(kind, info.filepath, intermediates) is not None
        if moved and not _staged(name, info, access or {}):
            continue
        for credentials in info.credentials:
            needed.setdefault(credentials, []).append(name)
    return needed


def _staged(name: str, info: DatasetInfo, access: Mapping[str, str]) -> bool:
    decision = decide(name, info.type, partition_type=info.partition_type, overrides=access)
    return decision.access is Access.STAGE


def check_credentials(
    graphs: Sequence[PipelineGraph],
    *,
    intermediates: str,
    access: Mapping[str, str],
    credentials_secret: SecretRef | None,
    project: Path,
    package: str,
    env: str | None,
) -> None:
    """Refuse a deployment whose datasets need credentials no job would get.

    Only names are looked at: whether the secret holds every entry is known
    only to the jobs (they name a missing one in one line).
    """
    if credentials_secret is not None:
        return
    needed: dict[str, list[str]] = {}
    for graph in graphs:
        for credentials, datasets in credentials_needed(graph, intermediates, access).items():
            for dataset in datasets:
                if dataset not in needed.setdefault(credentials, []):
                    needed[credentials].append(dataset)
    if not needed:
        return
    uses = "; ".join(f"{name!r} (datasets {', '.join(ds)})" for name, ds in needed.items())
    source = credentials_file(project, env)
    first = "" if source else f"write them to conf/{env or 'local'}/credentials.yml, then "
    source = source or f"conf/{env or 'local'}/credentials.yml"
    secret = f"{package}/credentials"
    raise UserError(
        f"the deployed pipelines need Kedro credentials {uses}, and credentials files stay out "
        f"of the image; store them in Secrets Manager and point the stack at the secret: {first}"
        f"(cd {project.name} && aws secretsmanager create-secret --name {secret} "
        f"--secret-string file://{source}) && pulumi config set {CREDENTIALS_KEY} {secret}"
    )


def credentials_file(project: Path, env: str | None) -> str | None:
    """The project's credentials file for ``env`` (Kedro's default run env: ``local``)
    relative to the project, if there is one; else ``conf/base``'s."""
    for folder in (env or "local", "base"):
        for path in _credentials_files(project / "conf" / folder):
            return path.relative_to(project).as_posix()
    return None


def local_credentials_document(project: Path, env: str | None) -> str | None:
    """What ``kedro run --env <env>`` reads as credentials, unresolved, as one document.

    ``local-run``'s emulated credentials secret: the files of ``conf/base``
    then ``conf/<env>`` (Kedro's default run env: ``local``), top-level entries
    of the latter winning, ``${oc.env:...}`` left for the task to resolve as
    on AWS. ``None`` when the project has no credentials files.
    """
    import yaml
    from omegaconf import OmegaConf

    merged: dict[str, object] = {}
    for folder in dict.fromkeys(("base", env or "local")):
        for path in _credentials_files(project / "conf" / folder):
            try:
                config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark else ""
                raise UserError(
                    f"{path.relative_to(project)} is not valid YAML or JSON{where}; fix it "
                    "(`kedro run` cannot read it either)"
                ) from None
            if isinstance(config, dict):
                merged.update({str(k): v for k, v in config.items()})
    return yaml.safe_dump(merged, sort_keys=False) if merged else None


def _credentials_files(folder: Path) -> list[Path]:
    """Kedro's credentials patterns (``credentials*``, ``credentials*/**``,
    ``**/credentials*``) in one configuration folder, hidden files ignored."""
    found = {*folder.glob("**/credentials*"), *folder.glob("credentials*/**/*")}
    return sorted(
        p
        for p in found
        if p.is_file()
        and p.suffix in (".yml", ".yaml", ".json")
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
