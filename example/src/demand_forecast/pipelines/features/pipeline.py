"""Features pipeline: ``sales_master`` -> ``model_input`` (namespace ``features``).

The dependency shape here is deliberately NOT series-parallel. With
A = aggregate_weekly_demand, B = build_lag_features, C = build_price_features,
D = assemble_model_input, E = profile_lag_coverage and
F = report.build_performance_report (in the report pipeline)::

    A -> B -> D -> (train ...) -> F
    A -> C -> D
         B -> E ------------------> F

B feeds both D and E while C feeds only D: the "N" shape {B->D, C->D, B->E}.
No nesting of sequences and parallel blocks expresses it exactly, so an
orchestrator has to add an ordering constraint (for example E after C) or
use per-job dependencies.

``features.weekly_demand`` is a MemoryDataset read by both B and C;
``features.lag_features`` and ``features.price_features`` are persisted by the
``{namespace}.{name}_features`` dataset factory; ``lag_coverage`` is a
MemoryDataset that crosses into the report pipeline.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    aggregate_weekly_demand,
    assemble_model_input,
    build_lag_features,
    build_price_features,
    profile_lag_coverage,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Create the features pipeline."""
    return Pipeline(
        [
            Node(
                aggregate_weekly_demand,
                inputs=["sales_master", "params:aggregation"],
                outputs="weekly_demand",
                name="aggregate_weekly_demand",
                tags=["large"],
            ),
            Node(
                build_lag_features,
                inputs=["weekly_demand", "params:lags"],
                outputs="lag_features",
                name="build_lag_features",
            ),
            Node(
                build_price_features,
                inputs="weekly_demand",
                outputs="price_features",
                name="build_price_features",
            ),
            Node(
                assemble_model_input,
                inputs=["lag_features", "price_features"],
                outputs="model_input",
                name="assemble_model_input",
            ),
            Node(
                profile_lag_coverage,
                inputs="lag_features",
                outputs="lag_coverage",
                name="profile_lag_coverage",
                tags=["small"],
            ),
        ],
        namespace="features",
        inputs={"sales_master"},
        outputs={"model_input", "lag_coverage"},
    )
