"""Typed, validated stack config: the only reader of ``pulumi.Config``.

Every key lives in the ``kedro-batch:`` namespace. ``parse`` is a pure
function over raw values (strings as Pulumi stores them, or already-typed
values), so the same validation runs under ``pulumi up``, the offline
``synth`` and the tests. A wrong or unknown key is a ``UserError`` naming
the key and what it accepts, raised before any resource is registered.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from kedro_batch_runtime.access import ACCESSES

from infra.errors import UserError
from infra.secrets import SecretRef, check_secrets_size, job_secrets, parse_variable

NAMESPACE = "kedro-batch"
REPO_ROOT = Path(__file__).resolve().parent.parent

Orchestration = Literal["structured", "exact"]
Intermediates = Literal["persist", "group", "error"]
ComputeType = Literal["FARGATE_SPOT", "FARGATE", "SPOT", "EC2"]
LogLevel = Literal["ALL", "ERROR", "FATAL", "OFF"]
Grouping = Literal["auto", "namespace", "none"]

# Expected seconds from a job's submission to its container running, when the
# stack does not say (kedro-batch:jobStartSeconds); README "Granularity" says
# where each figure comes from. Fargate pulls the image for every job.
JOB_START_SECONDS: dict[str, float] = {
    "FARGATE": 60.0,
    "FARGATE_SPOT": 60.0,
    "EC2": 30.0,
    "SPOT": 30.0,
}

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
    2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Profile:
    """Resources for the Batch jobs of the nodes that select this profile.

    ``None`` means "inherit from the default profile".
    """

    vcpu: float | None = None
    memory: int | None = None  # MiB
    gpu: int | None = None
    timeout: int | None = None  # seconds per attempt
    retries: int | None = None  # attempts after the first, for infrastructure failures
    ephemeral_storage: int | None = None  # GiB of Fargate task storage (21-200)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Run ``pipeline`` with ``params`` at ``expression`` (EventBridge Scheduler)."""

    expression: str  # cron(...) or rate(...)
    timezone: str = "UTC"
    pipeline: str | None = None  # None: the first deployed pipeline
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notifications:
    """Where failed, timed-out and aborted runs are announced."""

    email: str | None = None
    topic_arn: str | None = None  # an existing SNS topic; else one is created


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    pipelines: tuple[str, ...] = ("__default__",)
    orchestration: Orchestration = "structured"
    intermediates: Intermediates = "persist"
    dataset_access: Mapping[str, str] = field(default_factory=dict)  # dataset/pattern -> access
    kedro_env: str | None = None
    durations: Mapping[str, float] = field(default_factory=dict)
    grouping: Grouping = "auto"
    job_start_seconds: float | None = None  # None: JOB_START_SECONDS[compute_type]
    # compute
    compute_type: ComputeType = "FARGATE_SPOT"
    on_demand_fallback: bool = False
    max_vcpus: int = 16
    instance_types: tuple[str, ...] = ("optimal",)
    gpu_instance_types: tuple[str, ...] = ("g4dn", "g5", "g6")
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    availability_zone_ids: tuple[str, ...] = ()
    service_linked_roles: bool = False
    assign_public_ip: bool | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    tag_profiles: Mapping[str, str] = field(default_factory=dict)
    node_profiles: Mapping[str, str] = field(default_factory=dict)
    # image
    build_on_preview: bool = False
    keep_images: int = 20
    # data
    force_destroy: bool = False
    kms_key_arn: str | None = None
    run_data_expiration_days: int = 30
    # plain environment variables of every job (for ${oc.env:...}); never secrets
    environment: Mapping[str, str] = field(default_factory=dict)
    # secrets (names and ARNs only; infra.secrets)
    credentials_secret: SecretRef | None = None
    secret_env: Mapping[str, SecretRef] = field(default_factory=dict)
    secrets_kms_key_arn: str | None = None
    # observability
    log_retention_days: int = 30
    sfn_log_level: LogLevel = "ERROR"
    sfn_include_execution_data: bool = False
    tracing: bool = False
    # day 2
    schedules: tuple[Schedule, ...] = ()
    notifications: Notifications | None = None
    # MLflow (kedro-mlflow projects)
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_store: str | None = None  # s3://bucket[/prefix] the jobs write artifacts to


# --- value parsers: raw -> typed, or ValueError with what is accepted ------


def _decoded(raw: Any) -> Any:
    """Pulumi stores lists and objects as JSON strings; accept both forms."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _string(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("expected a non-empty string")
    return raw.strip()


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in options:
            raise ValueError(f"got {raw!r}; expected one of: {', '.join(options)}")
        return cast(str, raw)

    return parse


def _bool(raw: Any) -> bool:
    value = _decoded(raw)
    if not isinstance(value, bool):
        raise ValueError(f"got {raw!r}; expected true or false")
    return value


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = _decoded(raw)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"got {raw!r}; expected a whole number from {low} to {high}")
        return value

    return parse


def _string_list(raw: Any) -> tuple[str, ...]:
    value = _decoded(raw)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f'got {raw!r}; expected a list of strings, e.g. ["a", "b"]')
    return tuple(value)


def _non_empty_list(raw: Any) -> tuple[str, ...]:
    value = _string_list(raw)
    if not value:
        raise ValueError("expected a list with at least one entry")
    return value


def _retention(raw: Any) -> int:
    value = _decoded(raw)
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"got {raw!r}; CloudWatch accepts {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return cast(int, value)


def _durations(raw: Any) -> dict[str, float]:
    value = _decoded(raw)
    if not isinstance(value, dict):
        raise ValueError(f"got {raw!r}; expected an object of node name or tag -> seconds")
    result: dict[str, float] = {}
    for key, seconds in value.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"{key!r}: got {seconds!r}; expected seconds as a number")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"{key!r}: got {seconds!r}; expected a positive number of seconds")
        result[str(key)] = float(seconds)
    return result


_PROFILE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "vcpu": lambda v: _positive_number(v, "vcpu"),
    "memory": _int_between(128, 4_194_304),
    "gpu": _int_between(0, 16),
    "timeout": _int_between(60, 14 * 24 * 3600),
    "retries": _int_between(0, 9),
    # Fargate's range; the 20 GiB it gives without the setting is the default.
    "ephemeralStorage": _int_between(21, 200),
}
# Profile keys as written in config -> Profile fields.
_PROFILE_ATTRS = {"ephemeralStorage": "ephemeral_storage"}


def _seconds(raw: Any) -> float:
    value = _decoded(raw)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"got {raw!r}; expected a positive number of seconds, e.g. 60")
    if value <= 0:
        raise ValueError(f"got {raw!r}; expected a positive number of seconds, e.g. 60")
    return float(value)


def _positive_number(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ValueError(f"{what}: got {raw!r}; expected a positive number")
    return float(raw)


def _profiles(raw: Any) -> dict[str, Profile]:
    value = _decoded(raw)
    if not isinstance(value, dict):
        raise ValueError(f"got {raw!r}; expected an object of profile name -> settings")
    result: dict[str, Profile] = {}
    for name, spec in value.items():
        if not isinstance(spec, dict):
            raise ValueError(
                f'profile {name!r}: expected an object like {{"vcpu": 2, "memory": 4096}}'
            )
        unknown = sorted(set(spec) - set(_PROFILE_FIELDS))
        if unknown:
            raise ValueError(
                f"profile {name!r}: unknown setting {unknown[0]!r}; "
                f"allowed: {', '.join(_PROFILE_FIELDS)}"
            )
        fields: dict[str, Any] = {}
        for key, parse in _PROFILE_FIELDS.items():
            if key in spec:
                try:
                    fields[_PROFILE_ATTRS.get(key, key)] = parse(spec[key])
                except ValueError as exc:
                    raise ValueError(f"profile {name!r}, {key}: {exc}") from None
        result[str(name)] = Profile(**fields)
    return result


def _name_map(raw: Any) -> dict[str, str]:
    value = _decoded(raw)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"got {raw!r}; expected an object of name -> profile name")
    return dict(value)


def _dataset_access(raw: Any) -> dict[str, str]:
    value = _decoded(raw)
    if not isinstance(value, dict) or not value:
        raise ValueError(
            f"got {raw!r}; expected an object of dataset name or pattern -> access, e.g. "
            '{"model_input@spark": "stage", "{name}_table": "direct"}'
        )
    for key, access in value.items():
        if access not in ACCESSES:
            raise ValueError(f"{key!r}: got {access!r}; expected one of: {', '.join(ACCESSES)}")
    return dict(value)


# EventBridge Scheduler cron fields: minutes hours day-of-month month day-of-week year.
_CRON_FIELDS = (
    ("minutes", r"\d{1,2}", 0, 59),
    ("hours", r"\d{1,2}", 0, 23),
    ("day-of-month", r"\d{1,2}W?|L|LW|\?", 1, 31),
    ("month", r"\d{1,2}|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC", 1, 12),
    ("day-of-week", r"\d(#\d)?|\dL|SUN|MON|TUE|WED|THU|FRI|SAT|L|\?", 1, 7),
    ("year", r"\d{4}", 1970, 2199),
)


def _cron(raw: str) -> str:
    """``cron(0 6 * * ? *)`` or its six fields: checked field by field."""
    text = raw.strip()
    if re.fullmatch(r"rate\(\d+ (minute|minutes|hour|hours|day|days)\)", text):
        return text
    inner = re.fullmatch(r"cron\((.*)\)", text)
    fields = (inner.group(1) if inner else text).split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(
            f"cron {raw!r} has {len(fields)} fields; EventBridge wants 6: minutes hours "
            'day-of-month month day-of-week year, e.g. "0 6 * * ? *"'
        )
    for value, (name, atom, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for part in value.split(","):
            base, _, step = part.partition("/")
            if step and not step.isdigit():
                raise ValueError(f"cron {raw!r}: bad step {part!r} in {name}")
            ends = base.split("-") if base not in ("*", "?") else []
            if base not in ("*", "?") and not all(re.fullmatch(atom, e) for e in ends):
                raise ValueError(f"cron {raw!r}: {part!r} is not a valid {name} value")
            numbers = [int(e) for e in ends if e.isdigit()]
            if any(not low <= n <= high for n in numbers):
                raise ValueError(
                    f"cron {raw!r}: {part!r} is out of range for {name} ({low}-{high})"
                )
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"cron {raw!r}: exactly one of day-of-month and day-of-week must be '?'")
    return f"cron({' '.join(fields)})"


def _schedules(raw: Any) -> tuple[Schedule, ...]:
    value = _decoded(raw)
    entries = value if isinstance(value, list) else [value]
    result = []
    for i, entry in enumerate(entries):
        where = f"entry {i + 1}: " if len(entries) > 1 else ""
        if not isinstance(entry, dict) or "cron" not in entry:
            raise ValueError(f'{where}expected {{"cron": "0 6 * * ? *", "timezone": ...}}')
        unknown = sorted(set(entry) - {"cron", "timezone", "pipeline", "params"})
        if unknown:
            allowed = "cron, timezone, pipeline, params"
            raise ValueError(f"{where}unknown setting {unknown[0]!r}; allowed: {allowed}")
        timezone = entry.get("timezone", "UTC")
        if timezone not in zoneinfo.available_timezones():
            raise ValueError(
                f"{where}unknown time zone {timezone!r}; use an IANA name like Europe/Paris"
            )
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise ValueError(f"{where}params must be an object")
        try:
            expression = _cron(str(entry["cron"]))
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
        result.append(Schedule(expression, timezone, entry.get("pipeline"), params))
    return tuple(result)


def _notifications(raw: Any) -> Notifications:
    value = _decoded(raw)
    if not isinstance(value, dict) or not set(value) <= {"email", "topicArn"} or not value:
        raise ValueError(f'got {raw!r}; expected {{"email": "..."}} and/or {{"topicArn": "..."}}')
    email = value.get("email")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
        raise ValueError(f"email {email!r} is not an e-mail address")
    topic = value.get("topicArn")
    if topic is not None and not re.fullmatch(
        r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+", str(topic)
    ):
        raise ValueError(f"topicArn {topic!r} is not an SNS topic ARN")
    return Notifications(email=email, topic_arn=topic)


def _environment(raw: Any) -> dict[str, str]:
    value = _decoded(raw)
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) for v in value.values()
    ):
        raise ValueError(
            f"got {raw!r}; expected an object of environment variable -> value, "
            'e.g. {"DATA_ROOT": "s3://my-bucket/data"}'
        )
    return {
        parse_variable(str(k)): json.dumps(v) if isinstance(v, bool) else str(v)
        for k, v in value.items()
    }


def _secret(raw: Any) -> SecretRef:
    return SecretRef.parse(_string(raw))


def _secret_env(raw: Any) -> dict[str, SecretRef]:
    value = _decoded(raw)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(
            f"got {raw!r}; expected an object of environment variable -> secret name or ARN, "
            'e.g. {"API_TOKEN": "my-project/api-token"}'
        )
    return {parse_variable(str(k)): SecretRef.parse(v) for k, v in value.items()}


def _kms_key_arn(raw: Any) -> str:
    value = _string(raw)
    if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", value):
        raise ValueError(
            f"got {raw!r}; expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), "
            "not an alias: IAM grants kms:Decrypt on keys"
        )
    return value


def _zone_ids(raw: Any) -> tuple[str, ...]:
    value = _string_list(raw)
    bad = [z for z in value if not re.fullmatch(r"[a-z]+[0-9]+-az[0-9]+", z)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a zone ID; zone IDs look like use1-az1 or euw1-az2")
    if len(value) != 2 or len(set(value)) != 2:
        raise ValueError(f"got {raw!r}; expected two different zone IDs for the two subnets")
    return value


def _s3_prefix(raw: Any) -> str:
    value = _string(raw)
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", value):
        raise ValueError(f"got {raw!r}; expected an S3 URI such as s3://bucket/mlflow-artifacts")
    return value.rstrip("/")


def _project_dir(raw: Any) -> Path:
    path = Path(_string(raw))
    return path if path.is_absolute() else REPO_ROOT / path


# key -> (Settings field, parser). Keys are camelCase, as Pulumi config keys are.
_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "projectDir": ("project_dir", _project_dir),
    "pipelines": ("pipelines", _non_empty_list),
    "orchestration": ("orchestration", _choice("structured", "exact")),
    "intermediates": ("intermediates", _choice("persist", "group", "error")),
    "datasetAccess": ("dataset_access", _dataset_access),
    "kedroEnv": ("kedro_env", _string),
    "durations": ("durations", _durations),
    "grouping": ("grouping", _choice("auto", "namespace", "none")),
    "jobStartSeconds": ("job_start_seconds", _seconds),
    "computeType": ("compute_type", _choice("FARGATE_SPOT", "FARGATE", "SPOT", "EC2")),
    "onDemandFallback": ("on_demand_fallback", _bool),
    "maxVcpus": ("max_vcpus", _int_between(1, 10_000)),
    "instanceTypes": ("instance_types", _non_empty_list),
    "gpuInstanceTypes": ("gpu_instance_types", _non_empty_list),
    "subnetIds": ("subnet_ids", _string_list),
    "securityGroupIds": ("security_group_ids", _string_list),
    "availabilityZoneIds": ("availability_zone_ids", _zone_ids),
    "serviceLinkedRoles": ("service_linked_roles", _bool),
    "assignPublicIp": ("assign_public_ip", _bool),
    "profiles": ("profiles", _profiles),
    "tagProfiles": ("tag_profiles", _name_map),
    "nodeProfiles": ("node_profiles", _name_map),
    "buildOnPreview": ("build_on_preview", _bool),
    "keepImages": ("keep_images", _int_between(1, 1000)),
    "forceDestroy": ("force_destroy", _bool),
    "kmsKeyArn": ("kms_key_arn", _string),
    "runDataExpirationDays": ("run_data_expiration_days", _int_between(1, 3650)),
    "credentialsSecret": ("credentials_secret", _secret),
    "environment": ("environment", _environment),
    "secretEnv": ("secret_env", _secret_env),
    "secretsKmsKeyArn": ("secrets_kms_key_arn", _kms_key_arn),
    "logRetentionDays": ("log_retention_days", _retention),
    "sfnLogLevel": ("sfn_log_level", _choice("ALL", "ERROR", "FATAL", "OFF")),
    "sfnIncludeExecutionData": ("sfn_include_execution_data", _bool),
    "tracing": ("tracing", _bool),
    "schedule": ("schedules", _schedules),
    "notifications": ("notifications", _notifications),
    "mlflowTrackingUri": ("mlflow_tracking_uri", _string),
    "mlflowArtifactStore": ("mlflow_artifact_store", _s3_prefix),
}

KEYS = tuple(_KEYS)


def parse(raw: Mapping[str, Any]) -> Settings:
    """Typed settings from raw ``kedro-batch:`` values (namespace optional)."""
    values: dict[str, Any] = {"project_dir": REPO_ROOT / "example"}
    for full_key, raw_value in raw.items():
        key = full_key.removeprefix(f"{NAMESPACE}:")
        if key not in _KEYS:
            hint = difflib.get_close_matches(key, KEYS, n=1)
            fix = (
                f"did you mean {NAMESPACE}:{hint[0]}?" if hint else f"known keys: {', '.join(KEYS)}"
            )
            raise UserError(f"unknown config key {NAMESPACE}:{key}; {fix}")
        attr, parser = _KEYS[key]
        try:
            values[attr] = parser(raw_value)
        except ValueError as exc:
            raise UserError(f"invalid config {NAMESPACE}:{key}: {exc}") from None
    settings = Settings(**values)
    _check_profile_references(settings)
    secrets = job_secrets(settings.credentials_secret, settings.secret_env)
    check_secrets_size(secrets)
    both = sorted(set(settings.environment) & set(settings.secret_env))
    if both:
        raise UserError(
            f"invalid config {NAMESPACE}:environment: {both[0]!r} is also in "
            f"{NAMESPACE}:secretEnv; set it in one of them (secretEnv for secret values)"
        )
    if settings.secrets_kms_key_arn and not secrets:
        raise UserError(
            f"invalid config {NAMESPACE}:secretsKmsKeyArn: no secret uses it; set "
            f"{NAMESPACE}:credentialsSecret or {NAMESPACE}:secretEnv, or remove it"
        )
    for schedule in settings.schedules:
        if schedule.pipeline is not None and schedule.pipeline not in settings.pipelines:
            deployed = ", ".join(settings.pipelines)
            raise UserError(
                f"invalid config {NAMESPACE}:schedule: pipeline {schedule.pipeline!r} is not "
                f"deployed; add it to {NAMESPACE}:pipelines (deployed: {deployed})"
            )
    return settings


def _check_profile_references(settings: Settings) -> None:
    for key, mapping in (
        ("tagProfiles", settings.tag_profiles),
        ("nodeProfiles", settings.node_profiles),
    ):
        for name, profile in mapping.items():
            if profile not in settings.profiles:
                known = ", ".join(settings.profiles) or "(none defined)"
                raise UserError(
                    f"invalid config {NAMESPACE}:{key}: {name!r} selects unknown profile "
                    f"{profile!r}; define it under {NAMESPACE}:profiles (known: {known})"
                )


def job_start_seconds(settings: Settings) -> float:
    """Expected seconds from a job's submission to its container running."""
    if settings.job_start_seconds is not None:
        return settings.job_start_seconds
    return JOB_START_SECONDS[settings.compute_type]


def from_pulumi() -> Settings:
    """Settings of the running stack (``pulumi up``/``preview`` or mocks)."""
    from pulumi.runtime.config import CONFIG

    prefix = f"{NAMESPACE}:"
    return parse({k: v for k, v in CONFIG.get().items() if k.startswith(prefix)})


def check_region(region: str | None, skip_validation: str | bool = False) -> None:
    """Refuse an ``aws:region`` no AWS partition has, as the AWS provider does.

    The provider checks the region against its own list when it configures,
    i.e. only once ``pulumi up`` talks to AWS; the offline ``synth`` and
    ``local-run`` would otherwise plan happily for ``mars-1``. Its escape hatch
    for regions newer than the installed SDK, ``aws:skipRegionValidation``,
    applies here too.
    """
    if region is None or str(skip_validation).lower() == "true":
        return
    known = known_regions()
    if region not in known:
        hint = difflib.get_close_matches(region, sorted(known), n=1)
        raise UserError(
            f"invalid config aws:region: {region!r} is not an AWS region"
            + (f"; did you mean {hint[0]!r}?" if hint else "; regions look like 'eu-west-1'")
            + " (for a region newer than this botocore, set aws:skipRegionValidation: true)"
        )


def known_regions() -> frozenset[str]:
    """Every region of every AWS partition botocore knows (not the ``*-global`` aliases)."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("partitions")["partitions"]
    return frozenset(
        region
        for partition in partitions
        for region in partition["regions"]
        if not region.endswith("-global")
    )
