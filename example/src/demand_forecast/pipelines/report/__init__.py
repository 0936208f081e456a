"""The `report` modular pipeline (namespace `report`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
