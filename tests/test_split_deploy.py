"""A pipeline too large for one state machine deploys as a parent and parts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from parliament import analyze_policy_string

ROOT = Path(__file__).resolve().parent.parent
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"

# Synthesize the dev stack with a split budget small enough to cut the example.
PROGRAM = """
import json
import infra.asl as asl
asl.SPLIT_BYTES = 6_000
from infra.synth import synthesize
print(json.dumps(synthesize("dev").resources))
"""


@pytest.fixture(scope="module")
def resources() -> list[dict]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_parts_are_state_machines_the_parent_starts(resources):
    machines = [r for r in resources if r["type"] == STATE_MACHINE]
    parts = [m for m in machines if "kedro-batch:part" in m["inputs"]["tags"]]
    (parent,) = [m for m in machines if "kedro-batch:part" not in m["inputs"]["tags"]]
    assert len(parts) >= 2
    definition = json.loads(parent["inputs"]["definition"])
    started = {
        s["Parameters"]["StateMachineArn"]
        for s in _states(definition)
        if s.get("Resource") == "arn:aws:states:::states:startExecution.sync:2"
    }
    assert started == {p["arn"] for p in parts}
    for part in parts:
        assert part["inputs"]["type"] == "STANDARD"
        assert part["name"].startswith(parent["name"] + "-part-")


def test_the_role_may_start_and_watch_the_parts_and_nothing_more(resources):
    (policy,) = [
        r for r in resources
        if r["type"] == "aws:iam/rolePolicy:RolePolicy" and r["name"].endswith("-sfn")
    ]  # fmt: skip
    document = json.loads(policy["inputs"]["policy"])
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    parent = next(
        r for r in resources
        if r["type"] == STATE_MACHINE and "kedro-batch:part" not in r["inputs"]["tags"]
    )  # fmt: skip
    pattern = f":stateMachine:{parent['name']}-part-*"
    assert [a for a in by_sid["StartParts"]["Resource"] if a.endswith(pattern)]
    assert by_sid["StartParts"]["Action"] == ["states:StartExecution"]
    assert sorted(by_sid["WatchParts"]["Action"]) == [
        "states:DescribeExecution",
        "states:StopExecution",
    ]
    assert by_sid["PartCompletionEvents"]["Resource"].endswith(
        ":rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
    )
    findings = analyze_policy_string(json.dumps(document)).findings
    assert findings == []


def iam_matches(pattern: str, arn: str) -> bool:
    """IAM's resource matching: ``*`` any run of characters, ``?`` one, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_part_patterns_match_the_names_pulumi_gives_the_parts(resources):
    # Pulumi auto-names keep underscores: "...-__default__-part-1-1a2b3c4".
    (policy,) = [
        r for r in resources
        if r["type"] == "aws:iam/rolePolicy:RolePolicy" and r["name"].endswith("-sfn")
    ]  # fmt: skip
    by_sid = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}
    machines = [r for r in resources if r["type"] == STATE_MACHINE]
    parts = [m["arn"] for m in machines if "kedro-batch:part" in m["inputs"]["tags"]]
    (parent,) = [m["arn"] for m in machines if "kedro-batch:part" not in m["inputs"]["tags"]]
    assert parts and all(re.search(r"-__default__-part-\d+-[0-9a-f]{7}$", a) for a in parts), parts
    for arn in parts:
        assert any(iam_matches(p, arn) for p in by_sid["StartParts"]["Resource"]), arn
        execution = arn.replace(":stateMachine:", ":execution:") + ":run-1"
        assert any(iam_matches(p, execution) for p in by_sid["WatchParts"]["Resource"])
    # ... and nothing else: not the pipeline's own machine.
    assert not any(iam_matches(p, parent) for p in by_sid["StartParts"]["Resource"])


def _states(definition: dict):
    stack = [definition]
    while stack:
        machine = stack.pop()
        for state in machine["States"].values():
            yield state
            stack.extend(state.get("Branches", ()))
