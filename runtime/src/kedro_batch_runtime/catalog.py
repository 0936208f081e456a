"""The catalog one task runs with: the project's own, with its data moved.

Kedro builds a session's catalog from ``config_loader["catalog"]``, and a
value set on that key explicitly is used instead of the files (a documented
override). :func:`plan_catalog` computes that value: the project's catalog
configuration plus an explicit entry for each dataset of the task that has
to move (see :mod:`kedro_batch_runtime.layout` for where to, and
:mod:`kedro_batch_runtime.access` for the datasets that keep a local path in
the task's scratch folder, staged through it). Everything else stays
Kedro's: patterns, credentials, validators, the save version of unpinned
datasets, and the catalog class the project configured.

Planning never sees a credential: entries keep ``credentials: <name>``
references, which the session resolves. A dataset moved into the data bucket
and opened there directly loses its ``credentials``: it is read and written
with the job role, and credentials meant for a local file system would only
confuse ``s3fs``. A staged one keeps them: it still opens a local file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kedro.io import DataCatalog

from kedro_batch_runtime.access import (
    INCREMENTAL_TYPE,
    Access,
    canonical_type,
    decide,
    partition_type,
)
from kedro_batch_runtime.boundaries import (
    NodeLike,
    Storage,
    base_name,
    crossings,
    is_parameter,
    producers,
    storage,
)
from kedro_batch_runtime.credentials import (
    referenced,
    references,
    unresolved,
    without_credentials,
)
from kedro_batch_runtime.layout import DataLayout, bucket_path, versioned_path
from kedro_batch_runtime.settings import RunConfigError, RunSettings
from kedro_batch_runtime.staging import Staged

PICKLE_TYPE = "kedro_batch_runtime.datasets.PickleDataset"
PATH_KEYS = ("filepath", "path")  # ``path``: PartitionedDataset and friends


@dataclass(frozen=True, slots=True)
class Move:
    """One dataset the task reads or writes somewhere else than the project says."""

    dataset: str
    source: str  # the project's path, or "memory"
    target: str


@dataclass(frozen=True)
class CatalogPlan:
    config: dict[str, Any]
    moves: tuple[Move, ...]
    # Relative paths climbing out of the project: they stay on the disk of
    # whatever machine runs the task (the deployment refuses them at task
    # boundaries, so they can only be private to the task).
    left_local: tuple[str, ...]
    # Each dataset of the task -> the credentials names its entry uses.
    credentials: Mapping[str, tuple[str, ...]]
    staged: tuple[Staged, ...] = ()


def bucket_relative(kind: Storage, path: str, intermediates: str) -> str | None:
    """Where in the data bucket a dataset at ``path`` moves (its place: the
    project-relative path, or an absolute one without its leading ``/``;
    ``kind`` from :func:`~kedro_batch_runtime.boundaries.storage`), or ``None``
    when it stays where the catalog says."""
    if kind is not Storage.LOCAL or intermediates == "error":
        return None
    return bucket_path(path)


def plan_catalog(
    conf: Mapping[str, Any],
    pipeline: Sequence[NodeLike],
    task: Collection[str],
    run: RunSettings,
    *,
    scratch: str,
) -> CatalogPlan:
    """Catalog configuration for the nodes named in ``task`` of ``pipeline``.

    ``conf`` is the project's catalog configuration as loaded (relative paths
    still relative). Only datasets that the task's nodes read or write are
    looked at; the rest of the catalog is passed through untouched. Staged
    datasets get a path under ``scratch`` that mirrors their bucket key.
    """
    # A throwaway catalog answers "in the catalog?" and resolves patterns
    # exactly as the session's will; it creates no dataset and sees no credentials.
    resolver = DataCatalog.from_config(dict(conf), references())
    written = producers(pipeline)
    crossing = {base_name(c.dataset): c for c in crossings(pipeline, lambda name: name in task)}
    entries: dict[str, Any] = {}
    moves: list[Move] = []
    left_local: list[str] = []
    needs: dict[str, tuple[str, ...]] = {}
    staged: list[Staged] = []
    for name in _datasets(n for n in pipeline if n.name in task):
        in_catalog = name in resolver
        config = unresolved(resolver.config_resolver.resolve_pattern(name)) if in_catalog else {}
        key = next((k for k in PATH_KEYS if isinstance(config.get(k), str)), None)
        path: str | None = config[key] if key else None
        kind = storage(in_catalog=in_catalog, type_name=config.get("type"), filepath=path)
        if kind is Storage.MEMORY:
            if base_name(name) in crossing:
                target = _memory_target(name, crossing[base_name(name)].producer, run)
                entries[name] = {"type": PICKLE_TYPE, "filepath": target}
                moves.append(Move(name, "memory", target))
            continue
        needs[name] = referenced(config)
        if key is None or path is None:
            continue
        produced = base_name(name) in written
        versioned = bool(config.get("versioned"))
        target = path
        layout: DataLayout | None = None  # set when the dataset moves into the bucket
        staging = False
        place = bucket_relative(kind, path, run.intermediates)
        if place is not None:
            layout = run.layout(f"dataset {name!r} ({path})")
            target = layout.local(place, produced=produced, versioned=versioned)
            staging = _access(name, config, run) is Access.STAGE
            if not staging:
                config = without_credentials(config)
                needs[name] = referenced(config)
        elif kind is Storage.LOCAL and run.intermediates != "error":
            left_local.append(name)
        if produced and versioned:
            target = versioned_path(target, run.version)
            entries[name] = {**config, key: target, "versioned": False}
        elif target != path:
            entries[name] = {**config, key: target}
        if layout is not None and staging:
            local = f"{scratch.rstrip('/')}/{layout.key(target)}"
            entries[name] = {**entries[name], key: local}
            staged.append(
                Staged(
                    name,
                    local,
                    target,
                    latest_version=versioned and not produced,
                    empty_when_missing=canonical_type(str(config.get("type"))) == INCREMENTAL_TYPE,
                )
            )
        if target != path:
            moves.append(Move(name, path, target))
    needed = {name: names for name, names in needs.items() if names}
    return CatalogPlan({**conf, **entries}, tuple(moves), tuple(left_local), needed, tuple(staged))


def _access(name: str, config: Mapping[str, Any], run: RunSettings) -> Access:
    type_name = config.get("type")
    return decide(
        name,
        type_name if isinstance(type_name, str) else None,
        partition_type=partition_type(config),
        overrides=run.access,
    ).access


def _datasets(nodes: Iterable[NodeLike]) -> list[str]:
    seen: dict[str, None] = {}
    for n in nodes:
        for ds in (*n.inputs, *n.outputs):
            if not is_parameter(ds):
                seen.setdefault(ds)
    return list(seen)


def _memory_target(name: str, producer: str, run: RunSettings) -> str:
    if run.intermediates != "persist":
        raise RunConfigError(
            f"MemoryDataset {name!r} (written by node {producer!r}) crosses this task's "
            f"boundary, but intermediates mode {run.intermediates!r} does not persist "
            "MemoryDatasets: the task list does not match the deployed state machine "
            "(redeploy), or run with KEDRO_BATCH_INTERMEDIATES=persist"
        )
    return run.layout(f"MemoryDataset {name!r}").memory(name)
