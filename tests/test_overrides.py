"""Batch's 8,192-character limit on a job's container overrides."""

from __future__ import annotations

import json

import jsonata
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import asl, overrides
from infra.errors import UserError
from infra.overrides import PARAMS_RESERVE, params_length
from infra.plan import PipelinePlan
from tests.test_asl import graph as graph_of


def _command(nodes: list[str]) -> list[str]:
    return ["kedro-batch-task", "--nodes", ",".join(nodes)]


def test_a_short_task_fits_and_leaves_room_for_parameters():
    command = _command(["ingest.load", "features.build"])
    used = overrides.task_length(command, pipeline="__default__")
    assert overrides.fits(command, pipeline="__default__")
    assert overrides.params_room([used]) >= overrides.PARAMS_RESERVE


def test_a_task_whose_node_names_eat_the_limit_does_not_fit():
    names = [f"namespace_{i:03d}.a_rather_long_node_name_{i:03d}" for i in range(150)]
    assert len(",".join(names)) < overrides.MAX_CONTAINER_OVERRIDES  # the names alone fit
    assert not overrides.fits(_command(names), pipeline="__default__")


def test_the_count_covers_the_whole_override_and_the_job_definitions_environment():
    command = _command(["a"])
    environment = {"KEDRO_ENV": "prod", "X": "é" * 10}
    expected = len(
        json.dumps(
            {
                "command": command,
                "environment": [{"name": k, "value": v} for k, v in environment.items()],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
    )
    assert overrides.overrides_length(command, environment) == expected
    plain = overrides.task_length(command, pipeline="p")
    more = overrides.task_length(command, pipeline="p", job_environment=environment)
    assert more > plain


# --- wired in: compile time, the state machine, run ----------------------------------


def test_a_task_whose_overrides_leave_too_little_room_is_refused_by_name():
    long_names = {f"ns.{'n' * 100}_{i:03d}": [] for i in range(80)}
    graph = graph_of(long_names)
    tasks = asl.task_graph(graph, [list(long_names)])  # one task of 80 long names
    plan = PipelinePlan("p", graph, tasks, "structured", {}, job_environment={"K": "v"})
    with pytest.raises(UserError) as refused:
        _ = plan.params_room
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("pipeline 'p': task ") and "(80 nodes) needs " in message
    assert "kedro-batch:grouping" in message
    one_each = PipelinePlan("p", graph, asl.task_graph(graph), "structured", {})
    assert one_each.params_room >= PARAMS_RESERVE


def test_the_job_environment_counts_against_the_room():
    graph = graph_of({"a": []})
    bare = PipelinePlan("p", graph, asl.task_graph(graph), "structured", {})
    dressed = PipelinePlan(
        "p", graph, asl.task_graph(graph), "structured", {}, job_environment={"X": "y" * 500}
    )
    assert bare.params_room - dressed.params_room > 500


# Quotes and backslashes included; JSONata spells other characters as \uXXXX
# where Python's JSON keeps them, which only makes the guard stricter.
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)


@settings(max_examples=60, deadline=None)
@given(
    params=st.dictionaries(
        st.text(PRINTABLE, max_size=8),
        st.one_of(st.integers(), st.text(PRINTABLE, max_size=30)),
        max_size=5,
    )
)
def test_the_state_machine_guard_counts_what_run_counts(params):
    guard = asl.params_guard(10**6, "TooLarge", "Next")
    condition = guard["Choices"][0]["Condition"].removeprefix("{%").removesuffix("%}")
    size = condition.rsplit(">", 1)[0]
    expression = jsonata.Jsonata(size)
    frame = expression.create_frame()
    frame.bind("states", {"input": {"params": params}})
    assert expression.evaluate(None, frame) == params_length(params)


def test_schedule_params_that_no_job_could_take_stop_synth():
    from infra.plan import plan
    from infra.synth import stack_settings

    schedule = json.dumps({"cron": "0 6 * * ? *", "params": {"blob": "x" * 9000}})
    with pytest.raises(UserError, match=r"kedro-batch:schedule: entry 1's params take 9,"):
        plan(stack_settings("dev", {"schedule": schedule}))
