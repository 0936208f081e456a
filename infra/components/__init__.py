"""The Pulumi shell: small ComponentResources, wired by ``KedroBatchDeployment``."""

from infra.components.deployment import KedroBatchDeployment

__all__ = ["KedroBatchDeployment"]
