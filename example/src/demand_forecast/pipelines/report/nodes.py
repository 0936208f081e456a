"""Report: next week's forecast and the accuracy report planners read."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from demand_forecast.modelling import PANEL_KEYS, SERIES_KEYS, add_seasonality, predict_units


def summarise_accuracy_by_region(
    holdout_predictions: pd.DataFrame, stores: pd.DataFrame
) -> pd.DataFrame:
    """Break holdout accuracy down by region.

    Regional planners own their stock; an overall WAPE can hide one region
    where the model consistently under-forecasts.
    """
    frame = holdout_predictions.merge(stores[["store_id", "region"]], on="store_id")
    frame = frame.assign(
        abs_error=(frame["predicted"] - frame["actual"]).abs(),
        error=frame["predicted"] - frame["actual"],
    )
    summary = frame.groupby("region", as_index=False).agg(
        rows=("actual", "size"),
        actual_units=("actual", "sum"),
        abs_error=("abs_error", "sum"),
        error=("error", "sum"),
    )
    return (
        summary.assign(
            wape=(summary["abs_error"] / summary["actual_units"]).round(4),
            bias=(summary["error"] / summary["actual_units"]).round(4),
        )[["region", "rows", "actual_units", "wape", "bias"]]
        .sort_values("region")
        .reset_index(drop=True)
    )


def _next_week_features(model_input: pd.DataFrame) -> pd.DataFrame:
    """Roll every active series' latest row forward by one week.

    Next week's ``lag_k`` is this week's ``lag_{k-1}`` (``lag_1`` is this
    week's units), so lags must be contiguous from 1. Prices are assumed to
    return to list price with no promotion, the planning default.
    """
    frame = model_input.assign(week_start=pd.to_datetime(model_input["week_start"]))
    latest_week = frame["week_start"].max()
    latest = frame[frame["week_start"] == latest_week].sort_values(SERIES_KEYS)
    units_ago = {0: latest["units"]}
    units_ago.update(
        {int(m.group(1)): latest[c] for c in latest.columns if (m := re.fullmatch(r"lag_(\d+)", c))}
    )
    rolled = latest[SERIES_KEYS].assign(week_start=latest_week + pd.Timedelta(weeks=1))
    for column in latest.columns:
        if match := re.fullmatch(r"lag_(\d+)", column):
            needed = [int(match.group(1)) - 1]
        elif match := re.fullmatch(r"rolling_mean_(\d+)", column):
            needed = list(range(int(match.group(1))))
        else:
            continue
        if any(k not in units_ago for k in needed):
            raise ValueError(
                f"Cannot roll '{column}' forward: features.lags.offsets_weeks must "
                f"contain every week from 1 up to the longest lag or rolling window."
            )
        rolled[column] = np.mean([units_ago[k].to_numpy() for k in needed], axis=0)
    rolled = rolled.assign(
        price_index=1.0,
        price_change=(1.0 / latest["price_index"] - 1.0).round(6).to_numpy(),
        promo_share=0.0,
    )
    return add_seasonality(rolled)


def forecast_next_week(
    demand_model: dict[str, Any],
    model_input: pd.DataFrame,
    holdout_predictions: pd.DataFrame,
    seed: int,
    forecast: dict[str, Any],
) -> pd.DataFrame:
    """Forecast next week's units per store and product, with an interval.

    Planners order against the upper end of the interval for products they
    must not run out of. The interval comes from bootstrapping holdout
    residuals with the project-wide ``seed``, so reruns give identical numbers.
    """
    features = _next_week_features(model_input)
    point = predict_units(demand_model, features)
    residuals = (holdout_predictions["actual"] - holdout_predictions["predicted"]).to_numpy()
    rng = np.random.default_rng(int(seed))
    draws = point[:, None] + rng.choice(residuals, size=(len(point), int(forecast["n_bootstrap"])))
    tail = (1.0 - float(forecast["interval"])) / 2.0
    return (
        features[PANEL_KEYS]
        .assign(
            forecast_units=point,
            lower=np.clip(np.quantile(draws, tail, axis=1), 0.0, None).round(3),
            upper=np.clip(np.quantile(draws, 1.0 - tail, axis=1), 0.0, None).round(3),
        )
        .reset_index(drop=True)
    )


def build_performance_report(
    model_metrics: dict[str, float],
    region_accuracy: pd.DataFrame,
    lag_coverage: pd.DataFrame,
) -> pd.DataFrame:
    """Collect model, regional and data-coverage figures into one table.

    One long table (section, item, metric, value) is easy to diff between
    runs and to load into any BI tool, whatever metrics are added later.
    """
    overall = pd.DataFrame(
        {
            "section": "overall",
            "item": "all",
            "metric": list(model_metrics),
            "value": [float(v) for v in model_metrics.values()],
        }
    )
    regional = (
        region_accuracy.melt(
            id_vars="region", value_vars=["wape", "bias"], var_name="metric", value_name="value"
        )
        .rename(columns={"region": "item"})
        .assign(section="region")
    )
    coverage = lag_coverage.rename(columns={"feature": "item", "coverage": "value"}).assign(
        section="lag_coverage", metric="coverage"
    )
    columns = ["section", "item", "metric", "value"]
    return pd.concat(
        [overall[columns], regional[columns], coverage[columns]], ignore_index=True
    ).assign(value=lambda df: df["value"].astype("float64").round(4))
