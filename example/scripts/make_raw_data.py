"""Generate the synthetic raw data committed under ``data/01_raw/``.

The example project has no access to a real point-of-sale system, so this
script fabricates one: six stores, eight products, 40 weeks of daily sales with
weekday and yearly seasonality, price promotions (with a price elasticity the
model can learn) and the usual defects of a till export (re-sent duplicate
lines, returns booked as negative units, lines without a price, untidy
free-text columns).

Everything derives from one fixed seed and the files are written with the
``csv`` module and explicit number formatting, so running the script again
reproduces the committed files byte for byte::

    python scripts/make_raw_data.py           # (re)write data/01_raw/*.csv
    python scripts/make_raw_data.py --check   # exit 1 if the files differ
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np

SEED = 20240101
START = date(2024, 1, 1)  # a Monday
N_WEEKS = 40
RAW_DIR = Path(__file__).resolve().parents[1] / "data" / "01_raw"

# store_id, name, region as typed by hand in the ERP (untidy on purpose),
# floor space, opening date, demand multiplier
STORES = [
    ("S01", "Harbour Road", "North", 1850, "2011-03-14", 1.30),
    ("S02", "Mill Lane", " north", 1200, "2015-09-01", 0.90),
    ("S03", "Market Square", "South ", 1500, "2009-05-20", 1.10),
    ("S04", "Station Parade", "east", 900, "2019-11-02", 0.70),
    ("S05", "Riverside", "West", 1400, "2013-06-17", 1.00),
    ("S06", "Old Town", "SOUTH", 1000, "2017-02-08", 0.80),
]

# product_id, name, category (untidy), base price, base daily units,
# price elasticity, amplitude of the yearly cycle
PRODUCTS = [
    ("P01", "Whole milk 1l", "Dairy", 1.29, 20.0, 1.2, 0.05),
    ("P02", "Greek yoghurt 500g", "dairy ", 2.49, 12.0, 1.8, 0.10),
    ("P03", "Bananas 1kg", "Produce", 0.89, 35.0, 1.5, 0.08),
    ("P04", "Strawberries 400g", "produce", 4.99, 8.0, 2.5, 0.60),
    ("P05", "Sourdough loaf", "Bakery", 3.49, 15.0, 1.4, 0.05),
    ("P06", "Sparkling water 6x1l", "Beverages", 1.99, 25.0, 2.0, 0.35),
    ("P07", "Orange juice 1l", "beverages", 2.99, 10.0, 1.7, 0.15),
    ("P08", "Ground coffee 500g", "Beverages ", 6.49, 6.0, 2.2, -0.10),
]

WEEKDAY_FACTOR = [0.85, 0.90, 0.95, 1.00, 1.15, 1.30, 0.85]  # Mon..Sun
PROMOS_PER_PRODUCT = 3
DUPLICATE_RATE = 0.003
RETURN_RATE = 0.002
MISSING_PRICE_RATE = 0.002


def _write_csv(header: list[str], rows: list[list[str]]) -> bytes:
    """Serialise rows with fixed formatting so the output is byte-stable."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _make_promotions(rng: np.random.Generator) -> list[tuple[str, str, date, date, float]]:
    """Draw non-overlapping one-week promotions for every product."""
    promos = []
    n_slots = N_WEEKS - 2  # keep the first and last weeks promotion-free
    for product_id, *_ in PRODUCTS:
        weeks = np.sort(rng.choice(n_slots, size=PROMOS_PER_PRODUCT, replace=False)) + 1
        for week in weeks:
            start = START + timedelta(weeks=int(week), days=int(rng.integers(0, 3)))
            discount = float(rng.choice([0.10, 0.15, 0.20, 0.25, 0.30]))
            promos.append((product_id, start, start + timedelta(days=6), discount))
    promos.sort(key=lambda p: (p[1], p[0]))
    return [
        (f"PR{i:03d}", product_id, start, end, discount)
        for i, (product_id, start, end, discount) in enumerate(promos, start=1)
    ]


def _discount_on(promos: list, product_id: str, day: date) -> float:
    for _, promo_product, start, end, discount in promos:
        if promo_product == product_id and start <= day <= end:
            return discount
    return 0.0


def build_files() -> dict[str, bytes]:
    """Return the content of every raw file, keyed by file name."""
    rng = np.random.default_rng(SEED)
    promos = _make_promotions(rng)

    stores_csv = _write_csv(
        ["store_id", "store_name", "region", "size_sqm", "opened_on"],
        [[s[0], s[1], s[2], str(s[3]), s[4]] for s in STORES],
    )
    products_csv = _write_csv(
        ["product_id", "product_name", "category", "base_price"],
        [[p[0], p[1], p[2], f"{p[3]:.2f}"] for p in PRODUCTS],
    )
    promotions_csv = _write_csv(
        ["promo_id", "product_id", "start_date", "end_date", "discount_pct"],
        [
            [pid, product, start.isoformat(), end.isoformat(), f"{discount * 100:.0f}"]
            for pid, product, start, end, discount in promos
        ],
    )

    # two list-price rises half way through, as suppliers do
    price_rise = {
        "P05": (START + timedelta(weeks=18), 1.06),
        "P08": (START + timedelta(weeks=25), 1.08),
    }

    sales_rows: list[list[str]] = []
    for offset in range(N_WEEKS * 7):
        day = START + timedelta(days=offset)
        yearly = np.sin(2 * np.pi * (day.timetuple().tm_yday - 80) / 365.25)
        trend = 1.0 + 0.0004 * offset
        for store_id, _, _, _, _, store_factor in STORES:
            for product_id, _, _, base_price, base_units, elasticity, amplitude in PRODUCTS:
                list_price = base_price
                if product_id in price_rise and day >= price_rise[product_id][0]:
                    list_price = base_price * price_rise[product_id][1]
                discount = _discount_on(promos, product_id, day)
                price = round(list_price * (1.0 - discount), 2)
                expected = (
                    base_units
                    * store_factor
                    * WEEKDAY_FACTOR[day.weekday()]
                    * (1.0 + amplitude * yearly)
                    * trend
                    * (price / base_price) ** (-elasticity)
                )
                units = int(rng.poisson(expected))
                price_text = f"{price:.2f}"
                draw = rng.random(3)
                if draw[0] < RETURN_RATE:
                    units = -int(rng.integers(1, 4))
                if draw[1] < MISSING_PRICE_RATE:
                    price_text = ""
                row = [day.isoformat(), store_id, product_id, str(units), price_text]
                sales_rows.append(row)
                if draw[2] < DUPLICATE_RATE:
                    sales_rows.append(list(row))

    sales_csv = _write_csv(["date", "store_id", "product_id", "units", "price"], sales_rows)
    return {
        "stores.csv": stores_csv,
        "products.csv": products_csv,
        "promotions.csv": promotions_csv,
        "sales.csv": sales_csv,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=RAW_DIR, help="target directory")
    args = parser.parse_args(argv)

    files = build_files()
    if args.check:
        stale = [
            name
            for name, content in files.items()
            if not (args.out / name).is_file() or (args.out / name).read_bytes() != content
        ]
        for name in stale:
            sys.stderr.write(
                f"{args.out / name} differs from what {Path(__file__).name} generates\n"
            )
        return 1 if stale else 0

    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (args.out / name).write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
