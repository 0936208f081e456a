"""Report pipeline: forecast and accuracy report (namespace ``report``).

Its inputs come from every other pipeline, three of them as MemoryDatasets
(``stores`` from ingest, ``lag_coverage`` from features, ``model_metrics``
from train), so this pipeline only runs together with its producers.
``params:seed`` is a project-wide parameter kept out of the namespace.
Outputs ending in ``_report`` are persisted by the ``{name}_report`` factory.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import build_performance_report, forecast_next_week, summarise_accuracy_by_region


def create_pipeline(**kwargs) -> Pipeline:
    """Create the report pipeline."""
    return Pipeline(
        [
            Node(
                summarise_accuracy_by_region,
                inputs=["holdout_predictions", "stores"],
                outputs="region_accuracy_report",
                name="summarise_accuracy_by_region",
                tags=["small"],
            ),
            Node(
                forecast_next_week,
                inputs=[
                    "demand_model",
                    "model_input",
                    "holdout_predictions",
                    "params:seed",
                    "params:forecast",
                ],
                outputs="next_week_forecast",
                name="forecast_next_week",
            ),
            Node(
                build_performance_report,
                inputs=["model_metrics", "region_accuracy_report", "lag_coverage"],
                outputs="performance_report",
                name="build_performance_report",
                tags=["small"],
            ),
        ],
        namespace="report",
        inputs={
            "holdout_predictions",
            "stores",
            "demand_model",
            "model_input",
            "model_metrics",
            "lag_coverage",
        },
        outputs={"region_accuracy_report", "next_week_forecast", "performance_report"},
        parameters={"seed"},
    )
