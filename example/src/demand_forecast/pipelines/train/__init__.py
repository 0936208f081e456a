"""The `train` modular pipeline (namespace `train`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
