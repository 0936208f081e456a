"""Where one run keeps the data of a project written for a single machine.

A Kedro project's local paths (``data/01_raw/sales.csv``, ``/dbfs/raw/x.csv``)
name places on the machine that runs ``kedro run``. In a deployment every node
runs in its own container, so those paths move into the data bucket, laid out
like the machine's disk, and the runs sharing the bucket must not touch each
other's data. A path's place ``p`` in the bucket (:func:`bucket_path`) is the
relative path as written (inside the project), or an absolute path without its
leading ``/``. With bucket ``B``, run id ``R`` (the Step Functions execution
name) and run version ``V`` (derived from the execution's start time):

======================================  =========================================
dataset (local path at place ``p``)      location
======================================  =========================================
free input of the deployed pipeline      ``s3://B/p`` (versioned: the latest
                                         ``s3://B/p/<version>/<name>``, as Kedro)
written by the pipeline, versioned       ``s3://B/p/V/<name>``
written by the pipeline, unversioned     ``s3://B/runs/R/p``
MemoryDataset crossing tasks             ``s3://B/runs/R/memory/<dataset>.pickle``
======================================  =========================================

Why: raw data is shared, so it sits where a user uploads it, mirroring the
project (``data/01_raw/x.csv`` -> ``s3://B/data/01_raw/x.csv``) or the disk
(``/dbfs/raw/x.csv`` -> ``s3://B/dbfs/raw/x.csv``). Versioned outputs are
Kedro's own answer to keeping runs apart: the version folder does it, and the
history stays where Kedro (and the next run's "latest") looks. Unversioned
outputs would be overwritten by a concurrent run, so each run gets its own
prefix (which a bucket lifecycle rule can expire). Relative paths that climb
out of the project (``../shared/x.csv``) have no place: the image holds the
project only, so the deployment refuses them at task boundaries.

Every versioned dataset the pipeline writes, wherever it lives, is pinned
to ``V`` for saving *and* loading, so all tasks of a run agree on one
version and a task never reads a version written by another run. The pin
is a plain path (``<filepath>/V/<name>``, Kedro's versioned layout) rather
than ``Version(V, V)``: Kedro refuses to save a version that exists, which
would fail every retry and redrive of a task that had already saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from posixpath import basename, isabs, normpath
from urllib.parse import urlsplit

RUNS_PREFIX = "runs"
MEMORY_FOLDER = "memory"


def run_version(started: str) -> str:
    """Kedro's version string for an ISO-8601 start time.

    ``2026-11-26T22:34:40.123Z`` -> ``2026-11-26T22.34.40.123Z``, the format
    of ``kedro.io.core.generate_timestamp`` (UTC, milliseconds), so run
    versions sort among the versions ``kedro run`` writes.
    """
    moment = datetime.fromisoformat(started.strip())
    if moment.tzinfo is None:
        raise ValueError(f"{started!r} has no time zone; expected e.g. 2026-11-26T22:34:40.123Z")
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H.%M.%S}.{moment.microsecond // 1000:03d}Z"


def disk_path(filepath: str) -> str:
    """A local catalog path as a path on disk (``file:///x`` -> ``/x``)."""
    return urlsplit(filepath).path if urlsplit(filepath).scheme == "file" else filepath


def bucket_path(filepath: str) -> str | None:
    """The place of local path ``filepath`` in the bucket, or ``None``.

    Relative paths (inside the project) normalised, absolute ones (also as
    ``file://`` URLs) without their leading ``/``. ``None`` for other URLs
    and for relative paths that climb out of the project
    (``../shared/x.csv``): nothing in the image is there to mirror.
    """
    if urlsplit(filepath).scheme not in ("", "file"):
        return None
    place = normpath(disk_path(filepath))
    if isabs(place):
        return place.lstrip("/") or None
    if place == ".." or place.startswith("../"):
        return None
    return place


def versioned_path(filepath: str, version: str) -> str:
    """Where Kedro keeps ``version`` of a versioned dataset at ``filepath``."""
    path = filepath.rstrip("/")
    return f"{path}/{version}/{basename(path)}"


@dataclass(frozen=True, slots=True)
class DataLayout:
    """The locations of one run's data in the data bucket (see the module docstring)."""

    bucket: str
    run_id: str

    def shared(self, relative: str) -> str:
        return f"s3://{self.bucket}/{relative}"

    def run_scoped(self, relative: str) -> str:
        return f"s3://{self.bucket}/{RUNS_PREFIX}/{self.run_id}/{relative}"

    def local(self, place: str, *, produced: bool, versioned: bool) -> str:
        """Location of a local dataset at :func:`bucket_path` ``place``."""
        return self.run_scoped(place) if produced and not versioned else self.shared(place)

    def key(self, location: str) -> str:
        """The object key of a location in this bucket."""
        return location.removeprefix(f"s3://{self.bucket}/")

    def memory(self, dataset: str) -> str:
        return self.run_scoped(f"{MEMORY_FOLDER}/{dataset}.pickle")
