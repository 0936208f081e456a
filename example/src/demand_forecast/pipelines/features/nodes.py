"""Features: weekly demand panel, demand history and price signals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from demand_forecast.modelling import PANEL_KEYS, add_seasonality


def aggregate_weekly_demand(
    sales_master: pd.DataFrame, aggregation: dict[str, Any]
) -> pd.DataFrame:
    """Aggregate daily sales into a weekly panel per store and product.

    Replenishment is planned weekly, and weekly totals smooth out the weekday
    pattern that a daily model would have to learn. Weeks with fewer trading
    days than ``features.aggregation.min_days_in_week`` (store closures, data
    outages) are dropped rather than mistaken for low demand.
    """
    daily = sales_master.assign(
        week_start=sales_master["date"]
        - pd.to_timedelta(sales_master["date"].dt.dayofweek, unit="D"),
        revenue=sales_master["units"] * sales_master["price"],
    )
    weekly = daily.groupby([*PANEL_KEYS, "region", "category", "base_price"], as_index=False).agg(
        units=("units", "sum"),
        revenue=("revenue", "sum"),
        mean_price=("price", "mean"),
        promo_days=("on_promo", "sum"),
        days=("date", "nunique"),
    )
    weekly = weekly[weekly["days"] >= aggregation["min_days_in_week"]]
    avg_price = np.where(
        weekly["units"] > 0,
        weekly["revenue"] / weekly["units"].where(weekly["units"] > 0, 1),
        weekly["mean_price"],
    )
    return (
        weekly.assign(avg_price=np.round(avg_price, 4))
        .drop(columns=["revenue", "mean_price"])
        .sort_values(PANEL_KEYS)
        .reset_index(drop=True)
    )


def build_lag_features(weekly_demand: pd.DataFrame, lags: dict[str, Any]) -> pd.DataFrame:
    """Attach each series' own recent demand as predictors.

    Last week's sales are the strongest predictor of next week's. Lags are
    joined on calendar weeks (not row positions), so a missing week yields a
    missing lag instead of silently borrowing an older one. The rolling mean
    over ``features.lags.rolling_window`` weeks damps one-off spikes.
    """
    offsets = sorted(int(k) for k in lags["offsets_weeks"])
    window = int(lags["rolling_window"])
    history = weekly_demand[[*PANEL_KEYS, "units"]]
    frame = history
    for k in sorted(set(offsets) | set(range(1, window + 1))):
        shifted = history.assign(week_start=history["week_start"] + pd.Timedelta(weeks=k)).rename(
            columns={"units": f"_units_minus_{k}"}
        )
        frame = frame.merge(shifted, on=PANEL_KEYS, how="left")
    window_columns = [f"_units_minus_{k}" for k in range(1, window + 1)]
    frame = frame.assign(
        **{f"lag_{k}": frame[f"_units_minus_{k}"] for k in offsets},
        **{f"rolling_mean_{window}": frame[window_columns].mean(axis=1, skipna=False)},
    )
    helper_columns = [c for c in frame.columns if c.startswith("_units_minus_")]
    return frame.drop(columns=helper_columns).sort_values(PANEL_KEYS).reset_index(drop=True)


def build_price_features(weekly_demand: pd.DataFrame) -> pd.DataFrame:
    """Describe each week's price position, which drives demand swings.

    ``price_index`` compares the paid price with the list price (promotions
    push it below 1), ``price_change`` is the move since the previous week
    and ``promo_share`` the fraction of trading days on promotion.
    """
    weekly = weekly_demand[[*PANEL_KEYS, "avg_price", "base_price", "promo_days", "days"]]
    previous = (
        weekly[[*PANEL_KEYS, "avg_price"]]
        .assign(week_start=weekly["week_start"] + pd.Timedelta(weeks=1))
        .rename(columns={"avg_price": "previous_price"})
    )
    frame = weekly.merge(previous, on=PANEL_KEYS, how="left")
    price_change = (frame["avg_price"] / frame["previous_price"] - 1.0).fillna(0.0)
    return (
        frame.assign(
            price_index=(frame["avg_price"] / frame["base_price"]).round(6),
            price_change=price_change.round(6),
            promo_share=(frame["promo_days"] / frame["days"]).round(6),
        )[[*PANEL_KEYS, "price_index", "price_change", "promo_share"]]
        .sort_values(PANEL_KEYS)
        .reset_index(drop=True)
    )


def assemble_model_input(lag_features: pd.DataFrame, price_features: pd.DataFrame) -> pd.DataFrame:
    """Join demand history, price signals and seasonality into the model table.

    Rows without a complete history (the first weeks of every series) are
    dropped: the ridge model cannot use incomplete rows, and imputing past
    demand would leak made-up numbers into training.
    """
    frame = lag_features.merge(price_features, on=PANEL_KEYS, how="inner")
    return add_seasonality(frame).dropna().sort_values(PANEL_KEYS).reset_index(drop=True)


def profile_lag_coverage(lag_features: pd.DataFrame) -> pd.DataFrame:
    """Measure how much history each lag feature costs.

    Every extra week of lag drops the first weeks of every series from the
    model table; the report shows this so the lag choice is a visible
    trade-off rather than a silent loss of training data.
    """
    columns = [c for c in lag_features.columns if c.startswith(("lag_", "rolling_mean_"))]
    rows = len(lag_features)
    return pd.DataFrame(
        {
            "feature": columns,
            "rows": rows,
            "available": [int(lag_features[c].notna().sum()) for c in columns],
        }
    ).assign(coverage=lambda df: (df["available"] / max(rows, 1)).round(4))
