"""Batch's limit on a job's container overrides: 8,192 characters.

Batch hands a job's command and environment to ECS as container overrides,
and ECS refuses more than 8,192 characters of them. SubmitJob accepts the job
anyway; it fails later with the status reason ``Container Overrides length
must be at most 8192``. A task's overrides are its command (contract 4: the
comma-separated names of its nodes) and the run's environment, which includes
the runtime parameters a user passes at run time. So the compiler keeps every
task well inside the limit, leaving :data:`PARAMS_RESERVE` characters for the
parameters whatever the task, and ``run`` refuses parameters larger than what
the largest task leaves free.

The count is deliberately pessimistic: the job definition's environment and
the variables Batch adds itself (``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JQ_NAME``,
``AWS_BATCH_CE_NAME``, ... with queue and environment names of up to 128
characters) are counted as if they travelled in the overrides too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kedro_batch_runtime.settings import ENV_PARAMS, ENV_PIPELINE, ENV_RUN_ID, ENV_RUN_STARTED

from infra.errors import UserError

MAX_CONTAINER_OVERRIDES = 8_192
# What Batch adds to every job's environment, at its longest.
BATCH_ADDED = 1_024
# The longest run id (a Step Functions execution name) and start time.
RUN_ID_EXAMPLE = "x" * 80
STARTED_EXAMPLE = "2026-12-01T03:50:41.123Z"
# Characters of JSON that runtime parameters may use in any task.
PARAMS_RESERVE = 2_048


def overrides_length(command: Sequence[str], environment: Mapping[str, str]) -> int:
    """Characters of a container override with this command and environment."""
    override = {
        "command": list(command),
        "environment": [{"name": k, "value": v} for k, v in environment.items()],
    }
    return len(json.dumps(override, separators=(",", ":"), ensure_ascii=False))


def task_length(
    command: Sequence[str],
    *,
    pipeline: str,
    job_environment: Mapping[str, str] | None = None,
) -> int:
    """Characters a task with ``command`` uses before any runtime parameter:
    the run's environment at its longest, with empty parameters, the job
    definition's environment and what Batch adds."""
    environment = {
        ENV_RUN_ID: RUN_ID_EXAMPLE,
        ENV_RUN_STARTED: STARTED_EXAMPLE,
        ENV_PARAMS: "{}",
        ENV_PIPELINE: pipeline,
        **(job_environment or {}),
    }
    return overrides_length(command, environment) + BATCH_ADDED


def params_room(task_lengths: Sequence[int]) -> int:
    """Characters of parameter JSON (beyond ``{}``) every task can still take."""
    return MAX_CONTAINER_OVERRIDES - max(task_lengths, default=0)


def fits(
    command: Sequence[str],
    *,
    pipeline: str,
    job_environment: Mapping[str, str] | None = None,
) -> bool:
    """Whether a task with ``command`` leaves :data:`PARAMS_RESERVE` for parameters."""
    used = task_length(command, pipeline=pipeline, job_environment=job_environment)
    return used + PARAMS_RESERVE <= MAX_CONTAINER_OVERRIDES


def params_length(params: Mapping[str, Any]) -> int:
    """Characters runtime parameters add to a task's overrides, beyond ``{}``.

    ``KEDRO_BATCH_PARAMS`` is their compact JSON (``States.JsonToString``),
    which the override's own JSON quotes and escapes once more.
    """
    value = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    return len(json.dumps(value, ensure_ascii=False)) - len(json.dumps("{}"))


def check_tasks(
    pipeline: str,
    commands: Mapping[str, Sequence[str]],
    job_environment: Mapping[str, str] | None = None,
) -> int:
    """Refuse a task that leaves less than :data:`PARAMS_RESERVE` for parameters;
    return the room every task of the pipeline leaves (what ``run`` and the
    state machine let through).

    ``commands`` maps each task's name to its container command.
    """
    lengths = {
        task: task_length(command, pipeline=pipeline, job_environment=job_environment)
        for task, command in commands.items()
    }
    for task, used in sorted(lengths.items(), key=lambda item: -item[1]):
        if used + PARAMS_RESERVE > MAX_CONTAINER_OVERRIDES:
            nodes = commands[task][-1].count(",") + 1
            raise UserError(
                f"pipeline {pipeline!r}: task {task!r} ({nodes} nodes) needs {used:,} of "
                f"Batch's {MAX_CONTAINER_OVERRIDES:,} characters of container overrides "
                f"(its --nodes list and the job environment), leaving under the "
                f"{PARAMS_RESERVE:,} kept for runtime parameters; fuse fewer nodes into it "
                "(kedro-batch:grouping, kedro-batch:intermediates) or shorten its node names"
            )
        break
    return params_room(list(lengths.values()))
