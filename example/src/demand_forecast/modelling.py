"""Small numerical helpers shared by several pipelines.

The model is a ridge regression solved in closed form with ``numpy.linalg``:
it is fast, deterministic and dependency-free, which matters more for a weekly
replenishment forecast than squeezing out the last percent of accuracy.
The fitted model is a plain ``dict`` so the pickle can be loaded anywhere
without importing this package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SERIES_KEYS = ["store_id", "product_id"]
PANEL_KEYS = [*SERIES_KEYS, "week_start"]


def add_seasonality(frame: pd.DataFrame) -> pd.DataFrame:
    """Encode the week of the year on the unit circle.

    A sine/cosine pair lets a linear model express a yearly cycle without a
    discontinuity between week 52 and week 1.
    """
    week = frame["week_start"].dt.isocalendar().week.astype("float64")
    angle = 2.0 * np.pi * week / 52.0
    return frame.assign(week_sin=np.sin(angle).round(6), week_cos=np.cos(angle).round(6))


def fit_ridge(
    frame: pd.DataFrame, feature_columns: list[str], target: str, alpha: float
) -> dict[str, Any]:
    """Fit a ridge regression on standardised features.

    Standardising first makes ``alpha`` penalise every feature equally; the
    intercept is not penalised (it is the mean of the target).
    """
    if alpha < 0:
        raise ValueError(f"Ridge penalty alpha must be >= 0, got {alpha}.")
    x = frame[feature_columns].to_numpy(dtype="float64")
    y = frame[target].to_numpy(dtype="float64")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    z = (x - mean) / scale
    intercept = float(y.mean())
    gram = z.T @ z + alpha * np.eye(z.shape[1])
    coef = np.linalg.solve(gram, z.T @ (y - intercept))
    return {
        "kind": "ridge",
        "features": list(feature_columns),
        "target": target,
        "alpha": float(alpha),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "intercept": intercept,
        "n_train": len(frame),
    }


def predict_units(model: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Predict weekly units with a model from :func:`fit_ridge`, never below zero."""
    x = frame[model["features"]].to_numpy(dtype="float64")
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    prediction = z @ np.asarray(model["coef"]) + model["intercept"]
    return np.clip(prediction, 0.0, None).round(3)
