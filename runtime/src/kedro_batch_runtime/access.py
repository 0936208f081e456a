"""How a dataset moved into the data bucket reaches it: directly, or staged.

Most Kedro datasets open their path through fsspec, so the catalog entry can
simply point at ``s3://``. Some cannot: ``spark.SparkDataset`` turns
``s3://`` into ``s3a://``, which needs Java's hadoop-aws in the image, and
a custom dataset may hand its path to ``open()``, a C library, or a writer
that infers the format from the file name. Those are **staged**: the
catalog entry keeps a local path in the task's scratch folder, inputs are
downloaded there before their first load and outputs uploaded after each
save (:mod:`kedro_batch_runtime.staging`).

The rule is by dataset type and shared by the deploy-time analysis
(``infra.datasets``, which lists staged datasets in ``synth``) and the
container's hook, so both always agree:

1. ``kedro-batch:datasetAccess`` names the dataset (or a factory pattern
   matching it, most specific first, as Kedro matches patterns): that wins.
2. Types in :data:`DIRECT_TYPES` (kedro-datasets types that open their path
   through fsspec) are direct; a ``partitions.*`` folder dataset is direct
   when the dataset of its partitions is.
3. Everything else is staged: Spark types, and types this list does not
   know (a custom dataset), since staging works for any dataset that
   reads and writes a local path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import parse

ACCESS_KEY = "kedro-batch:datasetAccess"

# kedro-datasets types (``family.Class``, as catalogs spell them) whose load
# and save go through fsspec with the protocol of their path: s3:// works.
DIRECT_TYPES = frozenset(
    {
        "biosequence.BioSequenceDataset",
        "dask.CSVDataset",
        "dask.ParquetDataset",
        "email.EmailMessageDataset",
        "geopandas.GenericDataset",
        "holoviews.HoloviewsWriter",
        "json.JSONDataset",
        "matlab.MatlabDataset",
        "matplotlib.MatplotlibDataset",
        "matplotlib.MatplotlibWriter",
        "networkx.GMLDataset",
        "networkx.GraphMLDataset",
        "networkx.JSONDataset",
        "openxml.DocxDataset",
        "openxml.PptxDataset",
        "pandas.CSVDataset",
        "pandas.ExcelDataset",
        "pandas.FeatherDataset",
        "pandas.GenericDataset",
        "pandas.HDFDataset",
        "pandas.JSONDataset",
        "pandas.ParquetDataset",
        "pandas.XMLDataset",
        "pickle.PickleDataset",
        "pillow.ImageDataset",
        "plotly.HTMLDataset",
        "plotly.JSONDataset",
        "plotly.PlotlyDataset",
        "polars.CSVDataset",
        "polars.EagerPolarsDataset",
        "polars.LazyPolarsDataset",
        "svmlight.SVMLightDataset",
        "tensorflow.TensorFlowModelDataset",
        "text.TextDataset",
        "yaml.YAMLDataset",
    }
)
# Folder datasets: a prefix of partitions, each saved by an inner dataset.
INCREMENTAL_TYPE = "partitions.IncrementalDataset"
FOLDER_TYPES = frozenset({"partitions.PartitionedDataset", INCREMENTAL_TYPE})
SPARK_FAMILY = "spark"
_PACKAGE = "kedro_datasets"


class Access(StrEnum):
    DIRECT = "direct"  # the catalog entry points at s3:// itself
    STAGE = "stage"  # a local copy in the task's scratch folder, synced with s3://


ACCESSES = tuple(a.value for a in Access)


@dataclass(frozen=True, slots=True)
class Decision:
    access: Access
    reason: str


def canonical_type(type_name: str) -> str:
    """``kedro_datasets.pandas.csv_dataset.CSVDataset`` -> ``pandas.CSVDataset``.

    Catalogs write the short form, Kedro reports the full one; both must
    meet in :data:`DIRECT_TYPES`. Other types are returned unchanged.
    """
    parts = type_name.split(".")
    if parts[0] == _PACKAGE and len(parts) >= 3:
        return f"{parts[1]}.{parts[-1]}"
    return type_name


def partition_type(config: Mapping[str, Any]) -> str | None:
    """The type of a folder dataset's partitions (its ``dataset`` entry), if given."""
    inner = config.get("dataset")
    if isinstance(inner, Mapping):
        inner = inner.get("type")
    return inner if isinstance(inner, str) else None


def is_spark_type(type_name: str | None) -> bool:
    return bool(type_name) and canonical_type(str(type_name)).split(".")[0] == SPARK_FAMILY


def override_for(dataset: str, overrides: Mapping[str, str]) -> str | None:
    """The ``datasetAccess`` key that applies to ``dataset``: its name, else the
    most specific matching factory pattern (Kedro's own order)."""
    if dataset in overrides:
        return dataset
    patterns = sorted((k for k in overrides if "{" in k), key=_specificity)
    return next((p for p in patterns if parse.parse(p, dataset) is not None), None)


def _specificity(pattern: str) -> tuple[int, int, str]:
    literal = len(re.sub(r"\{.*?\}", "", pattern))
    return (-literal, -pattern.count("{"), pattern)


def decide(
    dataset: str,
    type_name: str | None,
    *,
    partition_type: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Decision:
    """How ``dataset`` of ``type_name`` reaches the bucket (see the module docstring).

    ``partition_type`` is the type of a folder dataset's partitions.
    """
    overrides = overrides or {}
    key = override_for(dataset, overrides)
    if key is not None:
        return Decision(Access(overrides[key]), f"{ACCESS_KEY} {key!r}")
    canonical = canonical_type(type_name or "")
    if canonical in FOLDER_TYPES:
        if partition_type is None:
            return Decision(Access.STAGE, f"{canonical} of unknown partitions")
        inner = decide(dataset, partition_type)
        return Decision(inner.access, f"{canonical} of {inner.reason}")
    if canonical in DIRECT_TYPES:
        return Decision(Access.DIRECT, f"{canonical} opens s3:// through fsspec")
    if is_spark_type(canonical):
        return Decision(Access.STAGE, f"{canonical}: Spark reads s3:// as s3a://, needs hadoop-aws")
    return Decision(Access.STAGE, f"{canonical or 'untyped'}: not known to open s3:// paths")
