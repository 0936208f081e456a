"""The dataset a MemoryDataset becomes when it crosses from one task to another."""

from __future__ import annotations

import pickle
from typing import Any

import fsspec
from kedro.io import AbstractDataset


class PickleDataset(AbstractDataset[Any, Any]):
    """Pickles a node output for a node that runs in another container.

    Deliberately minimal and dependency-free (fsspec, which reaches
    ``s3://`` through s3fs): it stands in for a MemoryDataset, which takes
    any Python object, so the only format that fits is pickle. A project
    that wants another format gives the dataset a catalog entry of its own.
    """

    def __init__(self, *, filepath: str) -> None:
        self._filepath = filepath

    def load(self) -> Any:
        # Only ever written by an earlier task of the same run.
        with fsspec.open(self._filepath, "rb") as f:
            return pickle.load(f)

    def save(self, data: Any) -> None:
        with fsspec.open(self._filepath, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)

    def _exists(self) -> bool:
        fs, path = fsspec.core.url_to_fs(self._filepath)
        return bool(fs.exists(path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}
