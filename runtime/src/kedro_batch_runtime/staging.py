"""Copies between a staged dataset's scratch path and its place in the bucket.

A staged dataset (:mod:`kedro_batch_runtime.access`) reads and writes a local
path in the task's scratch folder; the hook calls :func:`download` before
its first load and :func:`upload` after each save. What a task writes into
an input it downloaded without saving it (an ``IncrementalDataset``'s
``CHECKPOINT``, written by ``confirm``) goes back with :func:`write_back`
when the task succeeds. A dataset is one object
or, for folder datasets (Spark's directory outputs, ``PartitionedDataset``),
every object under a prefix: both directions handle either, and the remote
layout is exactly what a direct dataset would have written, versions
included, so a staged writer and a direct reader agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from posixpath import basename
from typing import Any

import fsspec


class StagingError(Exception):
    """A staged dataset could not be copied (its data is missing, or S3 failed)."""


@dataclass(frozen=True, slots=True)
class Staged:
    """One staged dataset of a task.

    ``local`` is what the catalog entry says (inside the scratch folder) and
    ``remote`` its place in the bucket. For a versioned free input both are
    the dataset's version root (``<path>``, holding ``<version>/<name>``)
    and only the latest version is fetched; everything else is pinned.
    ``empty_when_missing``: a folder no object is under yet is an empty one
    (an ``IncrementalDataset`` before its first partition arrives), not an
    error.
    """

    dataset: str
    local: str
    remote: str
    latest_version: bool = False
    empty_when_missing: bool = False


@dataclass(frozen=True, slots=True)
class Copied:
    files: int
    bytes: int
    source: str


def download(staged: Staged) -> Copied:
    """Fetch ``staged.remote`` (an object or a prefix) to ``staged.local``."""
    fs, root = fsspec.core.url_to_fs(staged.remote)
    local = staged.local
    if staged.latest_version:
        name = basename(root.rstrip("/"))
        versions = sorted(fs.glob(f"{root}/*/{name}"), reverse=True)
        if not versions:
            raise StagingError(
                f"dataset {staged.dataset!r} has no version in the bucket: nothing matches "
                f"{staged.remote}/<version>/{name}; upload one (or run its producer) first"
            )
        version = versions[0][len(root) + 1 :].split("/", 1)[0]
        root, local = f"{root}/{version}/{name}", f"{local}/{version}/{name}"
    if fs.isdir(root):
        remote_files = fs.find(root)
        local_files = [os.path.join(local, f[len(root) + 1 :]) for f in remote_files]
    elif fs.exists(root):
        remote_files, local_files = [root], [local]
    elif staged.empty_when_missing:
        os.makedirs(local, exist_ok=True)
        return Copied(0, 0, _url(fs, root))
    else:
        raise StagingError(
            f"dataset {staged.dataset!r} is not in the bucket: {_url(fs, root)} does not "
            "exist; upload it (or run the node that writes it) first"
        )
    fs.get(remote_files, local_files)
    size = sum(os.path.getsize(f) for f in local_files)
    return Copied(len(local_files), size, _url(fs, root))


def upload(staged: Staged) -> Copied:
    """Put ``staged.local`` (a file or a folder) at ``staged.remote``.

    A folder replaces what is under the prefix (an earlier attempt of the
    same task may have left other part files): the remote ends up holding
    exactly what this save wrote, as a local overwrite would.
    """
    fs, root = fsspec.core.url_to_fs(staged.remote)
    local = Path(staged.local)
    if local.is_dir():
        local_files = sorted(str(p) for p in local.rglob("*") if p.is_file())
        remote_files = [f"{root}/{Path(f).relative_to(local).as_posix()}" for f in local_files]
        if fs.exists(root):
            fs.rm(root, recursive=True)
    elif local.is_file():
        local_files, remote_files = [str(local)], [root]
    else:  # e.g. a PartitionedDataset saving no partition
        local_files, remote_files = [], []
    if local_files:
        fs.put(local_files, remote_files)
    return Copied(len(local_files), sum(os.path.getsize(f) for f in local_files), str(local))


Snapshot = dict[str, tuple[int, int]]  # local file -> (size, mtime in ns)


def snapshot(local: str) -> Snapshot:
    """The files under ``local`` (a file or a folder) as they are now."""
    root = Path(local)
    found = sorted(root.rglob("*")) if root.is_dir() else [root]
    return {str(f): (st.st_size, st.st_mtime_ns) for f in found if f.is_file() for st in [f.stat()]}


def write_back(staged: Staged, before: Snapshot) -> Copied:
    """Put the files under ``staged.local`` that are new or changed since
    ``before`` at their place under ``staged.remote``, and nothing else.

    Only those: an input's other objects are already in the bucket, and
    replacing the prefix as :func:`upload` does would delete what a
    producer added there while the task ran (new partitions of an inbox).
    """
    fs, root = fsspec.core.url_to_fs(staged.remote)
    local = Path(staged.local)
    changed = [f for f, seen in snapshot(staged.local).items() if before.get(f) != seen]
    remote = [
        f"{root}/{Path(f).relative_to(local).as_posix()}" if local.is_dir() else root
        for f in changed
    ]
    if changed:
        fs.put(changed, remote)
    return Copied(len(changed), sum(os.path.getsize(f) for f in changed), str(local))


def _url(fs: Any, path: str) -> str:
    return str(fs.unstrip_protocol(path))
