"""Train: fit the weekly demand model and measure it on held-out weeks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from demand_forecast.modelling import PANEL_KEYS, fit_ridge, predict_units


def split_train_test(
    model_input: pd.DataFrame, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the most recent weeks for testing.

    A random split would let the model peek at the future through its lag
    features; holding out the last ``train.split.test_weeks`` calendar weeks
    measures accuracy the way the forecast is used: on weeks not yet seen.
    """
    weeks = np.sort(model_input["week_start"].unique())
    test_weeks = int(split["test_weeks"])
    if not 0 < test_weeks < len(weeks):
        raise ValueError(
            f"train.split.test_weeks={test_weeks} must be between 1 and "
            f"{len(weeks) - 1} (the model input has {len(weeks)} weeks)."
        )
    is_test = model_input["week_start"] >= weeks[-test_weeks]
    train = model_input[~is_test].reset_index(drop=True)
    test = model_input[is_test].reset_index(drop=True)
    return train, test


def fit_ridge_model(
    train_set: pd.DataFrame, feature_columns: list[str], target: str, alpha: float
) -> dict[str, Any]:
    """Fit the demand model: ridge regression on the configured features.

    Ridge keeps the strongly correlated lag features from producing wild
    coefficients; ``train.model.alpha`` sets how hard it shrinks them.
    """
    missing = sorted(set(feature_columns) - set(train_set.columns))
    if missing:
        raise ValueError(
            f"train.model.features lists columns the model input does not have: "
            f"{missing}. Available: {sorted(train_set.columns)}."
        )
    return fit_ridge(train_set, list(feature_columns), target, float(alpha))


def predict_holdout(demand_model: dict[str, Any], test_set: pd.DataFrame) -> pd.DataFrame:
    """Predict the held-out weeks next to their actuals and a naive forecast.

    The naive forecast ("same as last week") is the baseline the model must
    beat to be worth deploying.
    """
    predictions = test_set[PANEL_KEYS].assign(
        actual=test_set[demand_model["target"]].astype("float64"),
        predicted=predict_units(demand_model, test_set),
    )
    if "lag_1" in test_set.columns:
        predictions = predictions.assign(naive=test_set["lag_1"].astype("float64"))
    return predictions.sort_values(PANEL_KEYS).reset_index(drop=True)


def _error_summary(actual: pd.Series, predicted: pd.Series) -> dict[str, float]:
    error = predicted - actual
    total = float(actual.sum()) or 1.0
    return {
        "mae": round(float(error.abs().mean()), 4),
        "rmse": round(float(np.sqrt((error**2).mean())), 4),
        "wape": round(float(error.abs().sum()) / total, 4),
        "bias": round(float(error.sum()) / total, 4),
    }


def evaluate_model(
    holdout_predictions: pd.DataFrame, demand_model: dict[str, Any]
) -> dict[str, float]:
    """Summarise holdout accuracy, including the skill over the naive forecast.

    WAPE (absolute error over total units) is what planners read; bias shows
    whether the model systematically over- or under-orders; ``skill_vs_naive``
    above zero means the model beats "same as last week".
    """
    metrics = _error_summary(holdout_predictions["actual"], holdout_predictions["predicted"])
    metrics.update(
        alpha=float(demand_model["alpha"]),
        n_train=float(demand_model["n_train"]),
        n_test=float(len(holdout_predictions)),
    )
    if "naive" in holdout_predictions.columns:
        naive = _error_summary(holdout_predictions["actual"], holdout_predictions["naive"])
        metrics["naive_wape"] = naive["wape"]
        metrics["skill_vs_naive"] = round(1.0 - metrics["wape"] / (naive["wape"] or 1.0), 4)
    return metrics
