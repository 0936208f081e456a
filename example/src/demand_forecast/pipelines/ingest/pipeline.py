"""Ingest pipeline: raw exports -> ``sales_master`` (namespace ``ingest``).

Inside the namespace, dataset names get the ``ingest.`` prefix
(``ingest.sales_clean`` is a MemoryDataset, ``ingest.products_clean`` a
catalog entry) except the raw inputs and the two outputs other pipelines use:
``sales_master`` (Parquet) and ``stores`` (a MemoryDataset that the report
pipeline reads too, so it crosses modular pipelines).
"""

from kedro.pipeline import Node, Pipeline

from .nodes import build_sales_master, clean_products, clean_sales, clean_stores


def create_pipeline(**kwargs) -> Pipeline:
    """Create the ingest pipeline."""
    return Pipeline(
        [
            Node(
                clean_sales,
                inputs=["raw_sales", "params:cleaning"],
                outputs="sales_clean",
                name="clean_sales",
            ),
            Node(
                clean_stores,
                inputs="raw_stores",
                outputs="stores",
                name="clean_stores",
                tags=["small"],
            ),
            Node(
                clean_products,
                inputs="raw_products",
                outputs="products_clean",
                name="clean_products",
                tags=["small"],
            ),
            Node(
                build_sales_master,
                inputs=["sales_clean", "stores", "products_clean", "raw_promotions"],
                outputs="sales_master",
                name="build_sales_master",
            ),
        ],
        namespace="ingest",
        inputs={"raw_sales", "raw_stores", "raw_products", "raw_promotions"},
        outputs={"sales_master", "stores"},
    )
