"""The `features` modular pipeline (namespace `features`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
