"""The `ingest` modular pipeline (namespace `ingest`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
