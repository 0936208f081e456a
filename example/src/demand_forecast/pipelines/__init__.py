"""Modular pipelines: ingest -> features -> train -> report."""
