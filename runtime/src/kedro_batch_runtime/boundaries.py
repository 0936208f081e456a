"""What a dataset is at a container boundary, and which datasets cross one.

When every task runs in its own container, a dataset survives from the task
that writes it to the task that reads it only if it lives somewhere both
can reach. These functions say where a dataset lives (:class:`Storage`) and
which datasets cross from one task to another (:func:`crossings`). They are
pure, on node names and dataset facts, because two parties must agree on
them exactly: the deploy-time analysis (``infra.datasets``, which decides
the task graph) and the run-time hook (which persists what crosses).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

# Kedro's ``name@format`` lets one node write ``x@spark`` and another read
# ``x@pandas``: two catalog entries, one dataset for dependencies.
TRANSCODING_SEPARATOR = "@"
MEMORY_TYPES = frozenset({"MemoryDataset", "SharedMemoryDataset"})
LOCAL_PROTOCOLS = frozenset({"", "file"})


class Storage(StrEnum):
    """Where a dataset's data lives while a pipeline runs."""

    REMOTE = "remote"  # object storage or a service: any container reaches it
    LOCAL = "local"  # a path on the machine (container) that runs the node
    MEMORY = "memory"  # the Python process that runs the node


def is_parameter(dataset: str) -> bool:
    """``params:`` inputs and ``parameters`` are configuration, not data."""
    return dataset == "parameters" or dataset.startswith("params:")


def base_name(dataset: str) -> str:
    """The dataset a transcoded name (``x@pandas``) stands for."""
    return dataset.split(TRANSCODING_SEPARATOR, 1)[0]


def is_memory_type(type_name: str | None) -> bool:
    """Whether a catalog ``type`` (short or fully qualified) keeps data in memory."""
    return type_name is None or type_name.rsplit(".", 1)[-1] in MEMORY_TYPES


def is_local_path(filepath: str) -> bool:
    return urlsplit(filepath).scheme in LOCAL_PROTOCOLS


def storage(*, in_catalog: bool, type_name: str | None, filepath: str | None) -> Storage:
    """Classify one dataset from its catalog facts.

    A dataset that is not in the catalog (pattern-aware, as Kedro's own
    ``name in catalog``) becomes a MemoryDataset at run time. A catalog
    entry without a path talks to a service (SQL, an API) that every
    container reaches alike.
    """
    if not in_catalog or is_memory_type(type_name):
        return Storage.MEMORY
    if filepath is not None and is_local_path(filepath):
        return Storage.LOCAL
    return Storage.REMOTE


class NodeLike(Protocol):
    """The part of a node the analysis needs (``kedro.pipeline.Node`` or a plain model)."""

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> Sequence[str]: ...

    @property
    def outputs(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Crossing:
    """A dataset written in one task and read in another.

    ``dataset`` is the name the producer writes; ``consumers`` are the nodes
    that read it from other tasks than the producer's, in pipeline order.
    """

    dataset: str
    producer: str
    consumers: tuple[str, ...]


def producers(nodes: Iterable[NodeLike]) -> dict[str, tuple[str, str]]:
    """Base dataset name -> (node, name as written); Kedro allows one producer."""
    return {base_name(out): (n.name, out) for n in nodes for out in n.outputs}


def crossings(nodes: Sequence[NodeLike], task_of: Callable[[str], Hashable]) -> list[Crossing]:
    """Datasets whose producer runs in another task than one of their consumers.

    ``task_of`` maps a node name to its task (any hashable). Parameters never
    cross: Kedro rebuilds them from configuration in every session.
    """
    written = producers(nodes)
    readers: dict[str, list[str]] = {}
    for n in nodes:
        for ds in n.inputs:
            key = base_name(ds)
            if is_parameter(ds) or key not in written:
                continue
            others = readers.setdefault(key, [])
            if task_of(n.name) != task_of(written[key][0]) and n.name not in others:
                others.append(n.name)
    return [
        Crossing(dataset=written[key][1], producer=written[key][0], consumers=tuple(others))
        for key, others in readers.items()
        if others
    ]


def free_inputs(nodes: Iterable[NodeLike]) -> list[str]:
    """Datasets the nodes read but none of them writes, in first-read order."""
    nodes = list(nodes)
    written = producers(nodes)
    seen: dict[str, None] = {}
    for n in nodes:
        for ds in n.inputs:
            if not is_parameter(ds) and base_name(ds) not in written:
                seen.setdefault(ds)
    return list(seen)


def final_outputs(nodes: Iterable[NodeLike]) -> list[str]:
    """Datasets the nodes write but none of them reads: the results of a run."""
    nodes = list(nodes)
    read = {base_name(ds) for n in nodes for ds in n.inputs}
    return [out for n in nodes for out in n.outputs if base_name(out) not in read]
