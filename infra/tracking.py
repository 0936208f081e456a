"""MLflow tracking of a deployed kedro-mlflow project: is it on, and where does it log?

kedro-mlflow's hook starts an MLflow run in every ``KedroSession``; a
pipeline split into Batch jobs would scatter one ``kedro run`` over as many
runs as jobs. When the project uses kedro-mlflow, the runtime
(:mod:`kedro_batch_runtime.mlflow_run`) makes every task of an execution log
into one shared run instead. This module decides, before anything is
deployed, whether that is needed and which tracking server the jobs use, and
refuses what cannot work across containers. Pure functions on the facts the
project loader reports (:class:`MlflowFacts`); the Pulumi shell only wires
the result into the job definition's environment and the job role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import urlsplit

from kedro_batch_runtime.settings import ENV_MLFLOW_TRACKING_URI, ENV_STACK
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from infra.errors import UserError

KEDRO_MLFLOW = "kedro-mlflow"
SAGEMAKER_PLUGIN = "sagemaker-mlflow"
CONFIG_KEY = "kedro-batch:mlflowTrackingUri"

# arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team
SAGEMAKER_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<type>mlflow-[a-z-]+)/(?P<name>[A-Za-z0-9][A-Za-z0-9-]*)"
)
# Schemes MLflow resolves to a store on the machine that logs: every Batch
# container would write its own copy, and the copies vanish with it.
LOCAL_SCHEMES = frozenset({"", "file", "sqlite"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

Kind = Literal["sagemaker", "http", "databricks", "other"]


@dataclass(frozen=True)
class MlflowFacts:
    """What the project loader found about MLflow in a project.

    ``config_files`` are project-relative paths of ``conf/*/mlflow*.yml``;
    ``uri`` and ``experiment`` are ``server.mlflow_tracking_uri`` and
    ``tracking.experiment.name`` as the deployed Kedro env resolves them.
    """

    requirements: frozenset[str] = frozenset()  # canonical names in the image's requirements
    requirements_file: str | None = None  # None: the project brings its own Dockerfile
    config_files: tuple[str, ...] = ()
    hook_in_settings: bool = False  # settings.HOOKS holds kedro-mlflow's hook
    hook_disabled: bool = False  # settings.DISABLE_HOOKS_FOR_PLUGINS names kedro-mlflow
    uri: str | None = None
    env: str = "local"  # the Kedro env the jobs run with, for messages

    def to_json(self) -> dict[str, object]:
        return {
            "requirements": sorted(self.requirements),
            "requirements_file": self.requirements_file,
            "config_files": list(self.config_files),
            "hook_in_settings": self.hook_in_settings,
            "hook_disabled": self.hook_disabled,
            "uri": self.uri,
            "env": self.env,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MlflowFacts:
        return cls(
            requirements=frozenset(data.get("requirements") or ()),
            requirements_file=data.get("requirements_file"),
            config_files=tuple(data.get("config_files") or ()),
            hook_in_settings=bool(data.get("hook_in_settings")),
            hook_disabled=bool(data.get("hook_disabled")),
            uri=data.get("uri"),
            env=str(data.get("env") or "local"),
        )


@dataclass(frozen=True)
class Detection:
    """Whether the project tracks with kedro-mlflow, and the evidence."""

    on: bool
    reason: str


@dataclass(frozen=True)
class Tracking:
    """Where the jobs of a deployment log, once validated for AWS."""

    uri: str
    source: str  # the config key or file the URI comes from
    kind: Kind
    reason: str  # why tracking is on
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sagemaker_arn(self) -> str | None:
        return self.uri if self.kind == "sagemaker" else None

    def environment(self, stack: str) -> dict[str, str]:
        """What the job definition tells every task (the runtime's contract)."""
        return {ENV_MLFLOW_TRACKING_URI: self.uri, ENV_STACK: stack}

    def describe(self) -> str:
        """One line for ``synth``: on, why, and where the URI comes from."""
        return (
            f"MLflow tracking: on ({self.reason}); one run per execution at {self.uri} "
            f"(from {self.source})"
        )


def requirement_names(text: str) -> frozenset[str]:
    """Canonical names of the packages a requirements file lists.

    Options (``-r``, ``--index-url``), comments, URLs and editable installs
    are skipped: the default image copies the file alone, so what it does
    not name directly is not installed.
    """
    names = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return frozenset(names)


def is_kedro_mlflow(distribution: str) -> bool:
    """``kedro-mlflow`` under any spelling (its wheel calls itself ``kedro_mlflow``)."""
    return canonicalize_name(distribution) == KEDRO_MLFLOW


def detect(facts: MlflowFacts) -> Detection:
    """Does the deployed project track with kedro-mlflow?

    Evidence, strongest first: the image's requirements list kedro-mlflow,
    ``settings.py`` registers its hook, or a ``conf/*/mlflow.yml`` configures
    it. A project that lists kedro-mlflow in ``DISABLE_HOOKS_FOR_PLUGINS``
    does not track through its hook, whatever else it has.
    """
    if facts.hook_disabled:
        return Detection(False, "settings.py disables kedro-mlflow's hooks")
    if KEDRO_MLFLOW in facts.requirements:
        return Detection(True, f"kedro-mlflow in {facts.requirements_file}")
    if facts.hook_in_settings:
        return Detection(True, "settings.py registers kedro-mlflow's hook")
    if facts.config_files:
        return Detection(True, f"{facts.config_files[0]} configures kedro-mlflow")
    return Detection(False, "no kedro-mlflow in the requirements, settings.py or conf/")


def resolve(facts: MlflowFacts, override: str | None) -> Tracking | None:
    """The tracking server the jobs log to, or ``None`` when tracking is off.

    ``override`` is ``kedro-batch:mlflowTrackingUri``; it wins over the
    project's ``mlflow.yml``. Raises ``UserError`` for what cannot work on
    AWS: no server (a local ``mlruns`` store), credentials inside the URI, an
    image without kedro-mlflow, or a SageMaker server without its plugin.
    """
    detection = detect(facts)
    if not detection.on:
        return None
    if facts.requirements_file is not None and KEDRO_MLFLOW not in facts.requirements:
        raise UserError(
            f"{detection.reason}, but {facts.requirements_file} does not list kedro-mlflow, "
            "so the image would not track; add kedro-mlflow to it (or remove the MLflow "
            "configuration from the project)"
        )
    if override:
        uri, source = override.strip(), CONFIG_KEY
    elif facts.uri:
        uri, source = facts.uri.strip(), _config_file(facts)
    else:
        uri, source = "mlruns", "kedro-mlflow's default"
    kind = _check(uri, source)
    needs_plugin = kind == "sagemaker" and SAGEMAKER_PLUGIN not in facts.requirements
    if needs_plugin and facts.requirements_file is not None:
        raise UserError(
            f"the MLflow tracking URI {uri} (from {source}) is a SageMaker MLflow tracking "
            f"server, which MLflow reaches through the {SAGEMAKER_PLUGIN} plugin; add "
            f"{SAGEMAKER_PLUGIN} to {facts.requirements_file}"
        )
    warnings: tuple[str, ...] = ()
    if kind == "http" and _is_loopback(urlsplit(uri).hostname or ""):
        warnings = (
            f"the MLflow tracking URI {uri} (from {source}) is this machine's loopback: Batch "
            f"containers cannot reach it; set {CONFIG_KEY} to a server they can reach",
        )
    return Tracking(uri=uri, source=source, kind=kind, reason=detection.reason, warnings=warnings)


def _config_file(facts: MlflowFacts) -> str:
    ours = [f for f in facts.config_files if f.split("/")[1:2] == [facts.env]]
    return (ours or list(facts.config_files) or ["mlflow.yml"])[-1]


def _check(uri: str, source: str) -> Kind:
    fix = (
        f"set {CONFIG_KEY} to a tracking server the jobs can reach: a SageMaker MLflow "
        "tracking server ARN or an http(s):// URL"
    )
    if uri.startswith("arn:"):
        match = SAGEMAKER_ARN.fullmatch(uri)
        if match is None:
            raise UserError(
                f"the MLflow tracking URI {uri!r} (from {source}) is not a SageMaker MLflow "
                "tracking server ARN (arn:aws:sagemaker:<region>:<account>:"
                "mlflow-tracking-server/<name>)"
            )
        if match["type"] != "mlflow-tracking-server":
            raise UserError(
                f"the MLflow tracking URI {uri} (from {source}) is a SageMaker {match['type']}; "
                "kedro-batch grants its jobs access to MLflow tracking servers only "
                "(mlflow-tracking-server/<name>); use one of those"
            )
        return "sagemaker"
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or re.fullmatch(r"[a-zA-Z]", scheme):  # C:\mlruns
        raise UserError(
            f"the MLflow tracking URI {uri!r} (from {source}) is a store on the machine that "
            f"logs: every Batch container would keep its own, lost when it stops; {fix}"
        )
    if parts.password or (parts.username and scheme in ("http", "https")):
        raise UserError(
            f"the MLflow tracking URI (from {source}) contains credentials, which would be "
            "stored in the job definition and the Pulumi state; remove them and give the jobs "
            "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
            "through kedro-batch:secretEnv"
        )
    if scheme in ("http", "https"):
        return "http"
    if scheme == "databricks":
        return "databricks"
    return "other"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def local_server_needed(facts: MlflowFacts) -> bool:
    """``local-run`` starts its own server unless the project's URI is one it can use."""
    return not (facts.uri and urlsplit(facts.uri).scheme.lower() in ("http", "https"))
