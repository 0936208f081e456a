"""Batch's 8,192-character limit on a job's container overrides."""

from __future__ import annotations

import json

from infra import overrides


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
