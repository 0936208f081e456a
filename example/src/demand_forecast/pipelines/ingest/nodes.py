"""Ingest: turn the raw till, ERP and marketing exports into one clean table."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _tidy_label(values: pd.Series) -> pd.Series:
    """Lower-case and strip a free-text label typed by hand in a source system."""
    return values.astype("str").str.strip().str.lower()


def clean_sales(raw_sales: pd.DataFrame, cleaning: dict[str, Any]) -> pd.DataFrame:
    """Remove till-export defects so later aggregates count real demand only.

    The point-of-sale export re-sends some batches (exact duplicate lines),
    books returns as negative units (which the model must not learn as
    demand) and occasionally loses the price. Those lines are dropped; the
    thresholds come from ``ingest.cleaning`` so they can be tuned per market.
    """
    sales = raw_sales.drop_duplicates() if cleaning["drop_duplicates"] else raw_sales
    sales = sales.dropna(subset=["price"])
    sales = sales[
        (sales["units"] >= cleaning["min_units"])
        & (sales["price"] > 0)
        & (sales["price"] <= cleaning["max_unit_price"])
    ]
    return (
        sales.assign(
            date=pd.to_datetime(sales["date"], format="%Y-%m-%d"),
            units=sales["units"].astype("int64"),
            price=sales["price"].astype("float64"),
        )
        .sort_values(["date", "store_id", "product_id"])
        .reset_index(drop=True)
    )


def clean_stores(raw_stores: pd.DataFrame) -> pd.DataFrame:
    """Normalise the store master data typed by hand in the ERP.

    Region names arrive with stray spaces and random capitalisation; left as
    they are, ``"North"`` and ``" north"`` would be reported as two regions.
    """
    if raw_stores["store_id"].duplicated().any():
        raise ValueError("raw_stores has duplicate store_id values")
    return raw_stores.assign(region=_tidy_label(raw_stores["region"]))[
        ["store_id", "store_name", "region", "size_sqm"]
    ]


def clean_products(raw_products: pd.DataFrame) -> pd.DataFrame:
    """Normalise the product master data so categories group correctly.

    Relative-price features compare a product with its category, so the
    category label must be consistent; a non-positive list price would make
    those ratios meaningless and is rejected early.
    """
    if (raw_products["base_price"] <= 0).any():
        raise ValueError("raw_products has non-positive base_price values")
    return raw_products.assign(
        category=_tidy_label(raw_products["category"]),
        base_price=raw_products["base_price"].astype("float64"),
    )[["product_id", "product_name", "category", "base_price"]]


def build_sales_master(
    sales: pd.DataFrame,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    promotions: pd.DataFrame,
) -> pd.DataFrame:
    """Join sales with store, product and promotion data into the primary table.

    Every downstream step needs the region, the category and whether a
    promotion was running that day; joining once here keeps those rules in
    one place. Sales for unknown stores or products are dropped, because
    nothing downstream could interpret them.
    """
    promo_days = pd.concat(
        [
            pd.DataFrame(
                {
                    "product_id": row.product_id,
                    "date": pd.date_range(row.start_date, row.end_date, freq="D"),
                    "discount_pct": float(row.discount_pct),
                }
            )
            for row in promotions.itertuples(index=False)
        ],
        ignore_index=True,
    ).drop_duplicates(subset=["product_id", "date"], keep="last")

    master = (
        sales.merge(stores[["store_id", "region"]], on="store_id", how="inner")
        .merge(products[["product_id", "category", "base_price"]], on="product_id", how="inner")
        .merge(promo_days, on=["product_id", "date"], how="left")
    )
    return (
        master.assign(
            discount_pct=master["discount_pct"].fillna(0.0),
            on_promo=master["discount_pct"].notna(),
        )
        .sort_values(["date", "store_id", "product_id"])
        .reset_index(drop=True)
    )
