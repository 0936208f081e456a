"""Pulumi.yaml: the project the CLI runs, and the `pulumi new` template."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from infra.config import KEYS, NAMESPACE, parse

ROOT = Path(__file__).resolve().parent.parent


def project() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_project_runs_python_with_pip_in_venv():
    data = project()
    assert data["name"] == NAMESPACE
    assert data["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }


def test_template_prompts_for_region_project_and_compute_with_valid_defaults():
    prompts = project()["template"]["config"]
    assert set(prompts) == {"aws:region", f"{NAMESPACE}:projectDir", f"{NAMESPACE}:computeType"}
    assert all(p["description"] and "default" in p for p in prompts.values())
    ours = {k: v["default"] for k, v in prompts.items() if k.startswith(f"{NAMESPACE}:")}
    assert {k.split(":", 1)[1] for k in ours} <= set(KEYS)
    settings = parse(ours)  # the defaults themselves validate
    assert settings.project_dir == ROOT / "example"


def test_stack_files_use_only_known_keys():
    for stack in ("dev", "prod"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        ours = {k: v for k, v in config.items() if k.startswith(f"{NAMESPACE}:")}
        parse({k: v if isinstance(v, str) else json.dumps(v) for k, v in ours.items()})
