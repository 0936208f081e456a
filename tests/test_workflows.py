"""The GitHub workflows users get: ``preview.yml`` on pull requests, ``deploy.yml`` on main.

Both are validated against the GitHub workflow JSON schema that
``check-jsonschema`` vendors (the one SchemaStore publishes), then checked
for what matters: when they run, what they may do, that the offline synth
gates every Pulumi command, and that prod deploys only after dev.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infra.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


class _Loader(yaml.SafeLoader):
    """YAML as GitHub reads it (1.2): ``on`` is a key, not ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def load(name: str) -> dict[str, Any]:
    return yaml.load((WORKFLOWS / name).read_text(encoding="utf-8"), Loader=_Loader)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    return json.loads(vendored.read_text(encoding="utf-8"))


def errors(schema: dict[str, Any], workflow: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(workflow)]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_workflow_matches_githubs_schema(schema: dict[str, Any], name: str):
    assert errors(schema, load(name)) == []


def test_the_schema_rejects_a_broken_workflow(schema: dict[str, Any]):
    broken = load("deploy.yml")
    del broken["jobs"]["dev"]["runs-on"]
    broken["jobs"]["prod"]["permissions"]["id-token"] = "admin"
    assert len(errors(schema, broken)) >= 2


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def index(job: dict[str, Any], predicate: Any) -> int:
    found = [i for i, step in enumerate(steps(job)) if predicate(step)]
    assert len(found) == 1, found
    return found[0]


def uses(action: str) -> Any:
    return lambda step: str(step.get("uses", "")).split("@")[0] == action


def runs(fragment: str) -> Any:
    return lambda step: fragment in str(step.get("run", ""))


def base(step: dict[str, Any]) -> bool:
    """A step of the preview's base-branch checkout."""
    return step.get("working-directory") == "base" or step.get("with", {}).get("path") == "base"


def check_job_setup(job: dict[str, Any], stack_expr: str) -> tuple[int, int, int]:
    """Checkout, Python 3.11, requirements, synth: shared by every job; synth's index."""
    setup = steps(job)[index(job, uses("actions/setup-python"))]
    assert setup["with"]["python-version"] == "3.11"  # a string: 3.10 would read as 3.1
    install = index(job, runs("pip install -r requirements.txt"))
    synth = index(
        job, lambda step: runs(f"-m infra synth --stack {stack_expr}")(step) and not base(step)
    )
    assert "continue-on-error" not in steps(job)[synth]  # exit 2 fails the job
    credentials = index(job, uses("aws-actions/configure-aws-credentials"))
    config = steps(job)[credentials]["with"]
    assert config["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(config)  # OIDC only
    checkout = next(i for i, step in enumerate(steps(job)) if uses("actions/checkout")(step))
    assert checkout < install < synth < credentials
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["contents"] == "read"
    return install, synth, credentials


def check_pulumi_step(step: dict[str, Any], command: str, stack_expr: str) -> None:
    assert step["uses"] == "pulumi/actions@v7"
    assert step["with"]["command"] == command
    assert stack_expr in step["with"]["stack-name"]
    assert step["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def test_preview_runs_on_pull_requests_synth_first_then_comments_the_diff():
    workflow = load("preview.yml")
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read"}  # the default for every job
    (job,) = workflow["jobs"].values()
    assert job["permissions"]["pull-requests"] == "write"
    assert job["strategy"]["matrix"]["stack"] == STACKS  # every stack, and only those
    assert job["strategy"]["fail-fast"] is False
    _, synth, credentials = check_job_setup(job, "${{ matrix.stack }}")
    upload = index(job, uses("actions/upload-artifact"))
    assert steps(job)[upload]["with"]["path"] == "build/${{ matrix.stack }}/"
    assert "${{ matrix.stack }}" in steps(job)[upload]["with"]["name"]
    preview = index(job, uses("pulumi/actions"))
    assert synth < upload < credentials < preview
    step = steps(job)[preview]
    check_pulumi_step(step, "preview", "matrix.stack")
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["diff"] is True


def test_preview_comments_run_time_and_bill_of_the_base_branch_beside_the_pull_request():
    (job,) = load("preview.yml")["jobs"].values()
    _, synth, credentials = check_job_setup(job, "${{ matrix.stack }}")
    checkout = index(job, lambda step: uses("actions/checkout")(step) and base(step))
    assert steps(job)[checkout]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    base_synth = index(job, lambda step: runs("-m infra synth")(step) and base(step))
    assert steps(job)[base_synth]["continue-on-error"] is True  # an old base has no plan.json
    diff = index(job, runs("-m infra plan-diff build/base-${{ matrix.stack }}/plan.json"))
    comment = index(job, uses("marocchino/sticky-pull-request-comment"))
    assert synth < checkout < base_synth < diff < comment < credentials
    assert "${{ matrix.stack }}" in steps(job)[comment]["with"]["header"]  # one per stack
    assert steps(job)[comment]["with"]["path"] == "plan-diff.md"


def test_deploy_runs_on_main_dev_then_prod_never_two_at_once_per_stack():
    workflow = load("deploy.yml")
    assert set(workflow["on"]) <= {"push", "workflow_dispatch"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert set(jobs) == {"dev", "prod"}
    needs = jobs["prod"]["needs"]
    assert "dev" in ([needs] if isinstance(needs, str) else needs)
    assert jobs["prod"]["environment"] == "prod"  # required reviewers live there
    groups = set()
    for stack, job in jobs.items():
        assert job["concurrency"]["cancel-in-progress"] is False  # never stop mid-update
        assert stack in job["concurrency"]["group"]
        groups.add(job["concurrency"]["group"])
        _, synth, credentials = check_job_setup(job, stack)
        up = index(job, uses("pulumi/actions"))
        assert synth < credentials < up
        check_pulumi_step(steps(job)[up], "up", stack)
    assert len(groups) == len(jobs)


def test_synth_fails_the_check_with_exit_2(capsys: pytest.CaptureFixture[str]):
    """What the synth step relies on: a bad stack exits 2 with one line."""
    assert main(["synth", "--stack", "no-such-stack"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no stack config Pulumi.no-such-stack.yaml")
    assert err.count("\n") == 1
