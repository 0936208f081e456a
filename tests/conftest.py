"""Test-wide settings."""

import os

from hypothesis import settings

# CI runs the same examples every time (a red build names a regression, not
# a newly drawn example); locally every run explores new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
