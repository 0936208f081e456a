"""Train pipeline: ``model_input`` -> model, holdout predictions, metrics.

Namespace ``train``: ``train.train_set`` and ``train.test_set`` are
MemoryDatasets passed between nodes of this pipeline; ``model_metrics`` is a
MemoryDataset the report pipeline reads. Parameters resolve under ``train``,
so ``params:model.alpha`` here is ``params:train.model.alpha`` (override it
with ``kedro run --params "train.model.alpha=0.5"``).
"""

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_model, fit_ridge_model, predict_holdout, split_train_test


def create_pipeline(**kwargs) -> Pipeline:
    """Create the train pipeline."""
    return Pipeline(
        [
            Node(
                split_train_test,
                inputs=["model_input", "params:split"],
                outputs=["train_set", "test_set"],
                name="split_train_test",
            ),
            Node(
                fit_ridge_model,
                inputs=[
                    "train_set",
                    "params:model.features",
                    "params:model.target",
                    "params:model.alpha",
                ],
                outputs="demand_model",
                name="fit_ridge_model",
                tags=["large"],
            ),
            Node(
                predict_holdout,
                inputs=["demand_model", "test_set"],
                outputs="holdout_predictions",
                name="predict_holdout",
            ),
            Node(
                evaluate_model,
                inputs=["holdout_predictions", "demand_model"],
                outputs="model_metrics",
                name="evaluate_model",
                tags=["small", "metrics"],
            ),
        ],
        namespace="train",
        inputs={"model_input"},
        outputs={"demand_model", "holdout_predictions", "model_metrics"},
    )
