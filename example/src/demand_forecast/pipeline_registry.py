"""Project pipelines.

Each modular pipeline is registered under its own name so it can be run (and
deployed) on its own; ``__default__`` is all of them joined together.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from demand_forecast.pipelines import features, ingest, report, train


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {
        "ingest": ingest.create_pipeline(),
        "features": features.create_pipeline(),
        "train": train.create_pipeline(),
        "report": report.create_pipeline(),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
