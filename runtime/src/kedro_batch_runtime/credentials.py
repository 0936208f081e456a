"""Kedro credentials for one task: the deployment's credentials secret.

Credentials files stay out of the image (its ``.dockerignore``), so on AWS a
task gets the project's credentials from Secrets Manager: the job definition's
``secrets`` make ECS fetch the stack's secret (``kedro-batch:credentialsSecret``)
as the container starts and put its value, a Kedro credentials document (what
a ``credentials.yml`` holds, YAML or JSON), in :data:`ENV_CREDENTIALS`. The
container makes no AWS call for it, and the value never passes through the
image, the container overrides or Pulumi's state. ``local-run`` sets the same
variable from the project's local credentials files: an emulated secret.

The document is read the way Kedro reads a credentials file (``${oc.env:VAR}``
resolved, keys starting with ``_`` dropped; the variables may come from
secrets too, ``kedro-batch:secretEnv``), and its top-level entries replace the
project's own entries of the same name.

A task needs only the credentials of the datasets it uses. Every other name
the catalog refers to gets an empty stand-in, because Kedro resolves every
``credentials:`` reference when it builds a catalog: a task that never uses a
credential is unaffected by its absence, and one that does fails before its
first node with one line naming the dataset, the entry and the fix.

Values are never logged: messages name entries and variables, never values.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import MarkedYAMLError

from kedro_batch_runtime.settings import RunConfigError

ENV_CREDENTIALS = "KEDRO_BATCH_CREDENTIALS"
CREDENTIALS_KEY = "credentials"  # the catalog key Kedro resolves (``credentials: <name>``)
SECRET_KEY = "kedro-batch:credentialsSecret"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reference:
    """A ``credentials: <name>`` reference, kept as the name."""

    name: str


class _References(dict[str, Any]):
    """Credentials for a catalog that must never see values: each name is its Reference."""

    def __missing__(self, key: str) -> Reference:
        return Reference(key)

    def __bool__(self) -> bool:
        return True  # Kedro swaps a falsy credentials mapping for {}


def references() -> dict[str, Any]:
    """Credentials to build a throwaway catalog with: resolves every name, holds no value.

    A dataset configuration resolved with it carries :class:`Reference` objects
    where Kedro would have put credentials; :func:`unresolved` turns them back
    into names.
    """
    return _References()


def unresolved(config: Any) -> Any:
    """``config`` with every :class:`Reference` replaced by its name again."""
    if isinstance(config, Reference):
        return config.name
    if isinstance(config, dict):
        return {k: unresolved(v) for k, v in config.items()}
    if isinstance(config, list):
        return [unresolved(v) for v in config]
    return config


def referenced(config: Any) -> tuple[str, ...]:
    """Credentials names a catalog configuration refers to, in order.

    Kedro's rule: a string under a ``credentials`` key, at any depth of nested
    mappings (a ``PartitionedDataset``'s ``dataset:`` may have its own).
    """
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == CREDENTIALS_KEY and isinstance(item, str):
                    found.setdefault(item)
                else:
                    walk(item)

    walk(config)
    return tuple(found)


def without_credentials(config: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset entry without ``credentials``, nested entries included (a
    ``PartitionedDataset`` hands its own or its ``dataset:``'s to each partition's
    file system)."""
    return {
        k: without_credentials(v) if isinstance(v, Mapping) else v
        for k, v in config.items()
        if k != CREDENTIALS_KEY
    }


# --- the document ----------------------------------------------------------------


def parse_document(text: str) -> DictConfig:
    """The credentials document, unresolved; ``RunConfigError`` naming where it is wrong.

    Parsed as Kedro parses a configuration file (``OmegaConf.load``), so JSON
    and YAML both work. Error messages say where, never what: a YAML error's
    usual snippet would print the secret's text.
    """
    try:
        config = OmegaConf.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RunConfigError(
            f"{ENV_CREDENTIALS} (the credentials secret, {SECRET_KEY}) is not valid YAML or "
            f"JSON{where}: {exc.problem}; store the text of a Kedro credentials.yml in the secret"
        ) from None
    if not isinstance(config, DictConfig):
        raise RunConfigError(
            f"{ENV_CREDENTIALS} (the credentials secret, {SECRET_KEY}) must be a mapping of "
            "credentials names to credentials, like a Kedro credentials.yml"
        )
    return config


@contextmanager
def _environment_resolver() -> Iterator[None]:
    """``${oc.env:VAR}`` while resolving credentials only, as Kedro allows it."""
    if OmegaConf.has_resolver("oc.env"):
        yield
        return
    from omegaconf.resolvers import oc

    OmegaConf.register_new_resolver("oc.env", oc.env)
    try:
        yield
    finally:
        OmegaConf.clear_resolver("oc.env")


_MISSING_VARIABLE = re.compile(r"Environment variable '([^']+)' not found")


def resolve_document(document: DictConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """Resolve the document entry by entry.

    Returns the resolved entries and, for each entry that could not be
    resolved (an unset variable, say), why, in words that hold no value.
    """
    resolved: dict[str, Any] = {}
    failed: dict[str, str] = {}
    with _environment_resolver():
        for key in document:
            name = str(key)
            if name.startswith("_"):
                continue
            try:
                node = document[name]
                resolved[name] = (
                    OmegaConf.to_container(node, resolve=True)
                    if OmegaConf.is_config(node)
                    else node
                )
            except OmegaConfBaseException as exc:
                missing = _MISSING_VARIABLE.search(str(exc))
                failed[name] = (
                    f"environment variable {missing.group(1)} is not set (kedro-batch:secretEnv "
                    "sets it from a secret)"
                    if missing
                    else f"{type(exc).__name__} while resolving it"
                )
    return resolved, failed


# --- one task's credentials --------------------------------------------------------


def task_credentials(
    project: Mapping[str, Any],
    document: str | None,
    catalog: Mapping[str, Any],
    needed: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The credentials a task's session gets (``config_loader["credentials"]``).

    ``project`` is what the project's own credentials files hold (nothing, in
    the default image); ``document`` the credentials secret's value, if the
    task was given one; ``catalog`` the task's catalog configuration;
    ``needed`` each of the task's datasets -> the credentials names it uses.
    """
    credentials = dict(project)
    failed: dict[str, str] = {}
    if document:
        entries, failed = resolve_document(parse_document(document))
        credentials.update(entries)
    for dataset, names in needed.items():
        for name in names:
            if name not in credentials:
                raise RunConfigError(_missing(dataset, name, document, failed.get(name)))
    for name, reason in failed.items():
        if name not in credentials:
            logger.warning(
                "credentials %r of the credentials secret left out: %s (no dataset of this "
                "task uses it)",
                name,
                reason,
            )
    # Kedro resolves every reference in the catalog, used or not: the ones
    # this task does not use may be absent, and get an empty stand-in.
    for name in referenced(catalog):
        credentials.setdefault(name, {})
    return credentials


def _missing(dataset: str, name: str, document: str | None, reason: str | None) -> str:
    where = f"dataset {dataset!r} needs credentials {name!r}"
    if reason:
        return f"{where}, which the credentials secret has but cannot resolve: {reason}"
    if document:
        return (
            f"{where}, which the credentials secret ({SECRET_KEY}) does not have; add an "
            f"entry {name!r} to the secret's document"
        )
    return (
        f"{where}, and this task was given no credentials ({ENV_CREDENTIALS} is not set): "
        f"set {SECRET_KEY} to a Secrets Manager secret holding the project's credentials.yml"
    )
