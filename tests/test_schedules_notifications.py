"""Schedules start runs on time; failed runs are announced by e-mail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from parliament import analyze_policy_string

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = {"cron": "0 6 ? * MON-FRI *", "timezone": "Europe/Paris", "params": {"a": {"b": 1}}}


def synth(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    args = [a for o in overrides for a in ("-c", o)]
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "infra", "synth", "--stack", "dev", "--out", str(tmp_path), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("synth")
    result = synth(
        out, f"schedule={json.dumps(SCHEDULE)}", 'notifications={"email": "team@example.com"}'
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "resources.json").read_text())


def one(resources: list[dict], type_: str, suffix: str = "") -> dict:
    (found,) = [r for r in resources if r["type"] == type_ and r["name"].endswith(suffix)]
    return found


def machine_arn(resources: list[dict]) -> str:
    return one(resources, "aws:sfn/stateMachine:StateMachine")["arn"]


def test_schedule_starts_the_pipeline_in_its_time_zone_with_its_params(deployed):
    schedule = one(deployed, "aws:scheduler/schedule:Schedule")["inputs"]
    assert schedule["scheduleExpression"] == "cron(0 6 ? * MON-FRI *)"
    assert schedule["scheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    assert schedule["target"]["arn"] == machine_arn(deployed)
    assert json.loads(schedule["target"]["input"]) == {"params": {"a": {"b": 1}}}


def test_scheduler_role_may_only_start_that_state_machine(deployed):
    role = one(deployed, "aws:iam/role:Role", "-scheduler")["inputs"]
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    policy = json.loads(
        one(deployed, "aws:iam/rolePolicy:RolePolicy", "-scheduler")["inputs"]["policy"]
    )
    assert policy["Statement"] == [
        {
            "Sid": "StartScheduledRuns",
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": [machine_arn(deployed)],
        }
    ]
    assert analyze_policy_string(json.dumps(policy)).findings == []


def test_failed_runs_reach_the_email_subscription(deployed):
    topic = one(deployed, "aws:sns/topic:Topic")
    subscription = one(deployed, "aws:sns/topicSubscription:TopicSubscription")["inputs"]
    assert subscription == {
        "protocol": "email",
        "endpoint": "team@example.com",
        "topic": topic["arn"],
    }
    rule = one(deployed, "aws:cloudwatch/eventRule:EventRule")
    pattern = json.loads(rule["inputs"]["eventPattern"])
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail"] == {
        "status": ["FAILED", "TIMED_OUT", "ABORTED"],
        "stateMachineArn": [machine_arn(deployed)],
    }
    target = one(deployed, "aws:cloudwatch/eventTarget:EventTarget")["inputs"]
    assert target["arn"] == topic["arn"]
    template = json.loads(target["inputTransformer"]["inputTemplate"])
    assert "Kedro pipeline '__default__'" in template and "<execution>" in template
    assert target["inputTransformer"]["inputPaths"]["execution"] == "$.detail.name"


def test_only_the_failure_rule_may_publish_to_the_topic(deployed):
    policy = json.loads(one(deployed, "aws:sns/topicPolicy:TopicPolicy")["inputs"]["policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    rule_arn = one(deployed, "aws:cloudwatch/eventRule:EventRule")["arn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [rule_arn]}}


def test_an_existing_topic_is_used_as_it_is(tmp_path: Path):
    topic = "arn:aws:sns:eu-west-1:123456789012:ops-alerts"
    result = synth(tmp_path, json.dumps({"topicArn": topic}).join(("notifications=", "")))
    assert result.returncode == 0, result.stderr
    resources = json.loads((tmp_path / "resources.json").read_text())
    types = {r["type"] for r in resources}
    assert "aws:sns/topic:Topic" not in types and "aws:sns/topicPolicy:TopicPolicy" not in types
    assert one(resources, "aws:cloudwatch/eventTarget:EventTarget")["inputs"]["arn"] == topic


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('schedule={"cron": "0 6 * * *"}', "has 5 fields; EventBridge wants 6"),
        ('schedule={"cron": "0 6 * * ? *", "timezone": "Mars/Olympus"}', "unknown time zone"),
        ('schedule={"cron": "0 6 * * ? *", "pipeline": "nope"}', "pipeline 'nope' is not deployed"),
        ('notifications={"email": "not-an-address"}', "is not an e-mail address"),
    ],
)
def test_bad_schedules_and_notifications_exit_2_naming_the_key(tmp_path, override, message):
    result = synth(tmp_path, override)
    assert result.returncode == 2
    key = override.split("=", 1)[0]
    assert f"kedro-batch:{key}" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
