"""Execute generated definitions in moto's Step Functions interpreter.

moto 5.2.5 can run state machines whose tasks submit Batch jobs, once four
defects are patched on the test side (DESIGN.md, "Offline verification"):

* its interpreter hands ASL's PascalCase ``Parameters`` to botocore as they
  are, so every ``batch:submitJob`` fails with ``KeyError: 'JobName'`` (and
  ``states:startExecution`` likewise); they are converted with botocore's
  service model, and responses back to the PascalCase Step Functions shows,
  as LocalStack does;
* its in-process backends are not thread-safe, and wide ``Parallel`` states
  fail with "dictionary changed size during iteration": calls are serialised;
* its context object holds ``$$.Execution.StartTime`` as a datetime, which
  no JSON serialiser takes; it becomes the ISO string AWS passes;
* a ``States.*`` error leaving a ``Parallel`` branch becomes ``States.Runtime``
  because ``CustomErrorName`` rejects the prefix: it is let through;
* its JSONata evaluator is a stub (LocalStack's bridge to a JVM is left
  out), so JSONata states, which Step Functions evaluates, fail: expressions
  are evaluated with ``jsonata-python``, a port of the same jsonata-java.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.model import Shape

REGION = "eu-west-1"
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "batch": {"use_docker": False},
}


def _to_boto(value: Any, shape: Shape | None) -> Any:
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        members = {m.lower(): m for m in shape.members}  # type: ignore[attr-defined]
        out = {}
        for key, item in value.items():
            name = members.get(key.lower(), key)
            out[name] = _to_boto(item, shape.members.get(name))  # type: ignore[attr-defined]
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [_to_boto(v, shape.member) for v in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _to_boto(v, shape.value) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def _to_sfn(value: Any) -> Any:
    """PascalCase an API response's keys, as Step Functions shows them; an
    execution's ``Input``/``Output`` are user data and stay as they are."""
    if isinstance(value, dict):
        items = [(k[:1].upper() + k[1:], v) for k, v in value.items()]
        value.clear()
        value.update((k, v if k in ("Input", "Output") else _to_sfn(v)) for k, v in items)
    elif isinstance(value, list):
        for item in value:
            _to_sfn(item)
    return value


@contextmanager
def patched_moto() -> Iterator[None]:
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.stepfunctions.parser.asl.component.common.error_name import custom_error_name
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service as task_service,
    )
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    # Every service integration (batch, and states for split pipelines' parts).
    service = task_service.StateTaskService
    models: dict[str, Any] = {}
    lock = threading.RLock()
    saved = (
        service._normalise_parameters,
        service._normalise_response,
        BotocoreStubber.__call__,
        custom_error_name.CustomErrorName.__init__,
        ExecutionWorker._get_evaluation_environment,
    )

    def evaluation_environment(worker):
        env = saved[4](worker)
        execution = env.states.context_object.context_object_data["Execution"]
        started = execution["StartTime"]
        if isinstance(started, datetime):
            # AWS hands the context object's StartTime over as an ISO string.
            iso = started.astimezone(UTC).isoformat(timespec="milliseconds")
            execution["StartTime"] = iso.replace("+00:00", "Z")
        return env

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        name = boto_service_name or self._get_boto_service_name()
        if name not in models:
            client = boto3.session.Session().client(name, region_name=REGION)
            models[name] = client.meta.service_model
        model = models[name]
        action = service_action_name or self._get_boto_service_action()
        operation = model.operation_model(
            model.operation_names[
                [o.lower() for o in model.operation_names].index(action.replace("_", ""))
            ]
        )
        converted = _to_boto(parameters, operation.input_shape)
        parameters.clear()
        parameters.update(converted)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        _to_sfn(response)

    def serialised_call(stubber, *args, **kwargs):
        with lock:
            return saved[2](stubber, *args, **kwargs)

    def evaluate_jsonata(expression: str) -> Any:
        import jsonata

        return jsonata.Jsonata(expression).evaluate(None)

    saved_jsonata = moto_jsonata._eval_jsonata
    moto_jsonata._eval_jsonata = evaluate_jsonata
    service._normalise_parameters = normalise_parameters
    service._normalise_response = normalise_response
    BotocoreStubber.__call__ = serialised_call
    custom_error_name.CustomErrorName.__init__ = ErrorName.__init__
    ExecutionWorker._get_evaluation_environment = evaluation_environment
    try:
        yield
    finally:
        moto_jsonata._eval_jsonata = saved_jsonata
        (
            service._normalise_parameters,
            service._normalise_response,
            BotocoreStubber.__call__,
            custom_error_name.CustomErrorName.__init__,
            ExecutionWorker._get_evaluation_environment,
        ) = saved


def batch_environment(batch: Any, iam: Any, ec2: Any) -> tuple[str, str]:
    """A Fargate compute environment, a queue and a job definition in moto."""
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="kedro", Description="kedro", VpcId=vpc)
    ce = batch.create_compute_environment(
        computeEnvironmentName="kedro-ce",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 16,
            "subnets": [subnet],
            "securityGroupIds": [group["GroupId"]],
        },
        serviceRole=role,
    )
    queue = batch.create_job_queue(
        jobQueueName="kedro-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    jobdef = job_definition(batch, "kedro", executionRoleArn=role)
    return queue["jobQueueArn"], jobdef


def job_definition(batch: Any, name: str, **container: Any) -> str:
    """A Fargate job definition of a kedro-batch task in moto (``container``:
    more container properties); returns its ARN."""
    return batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "example@sha256:0",
            "command": ["kedro-batch-task", "--help"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
            **container,
        },
    )["jobDefinitionArn"]


def wait(sfn: Any, execution_arn: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution still running after {timeout}s")
        time.sleep(0.5)


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (free port) in this process; yields its URL.

    For code under test that talks to AWS over HTTP (``--endpoint-url``),
    as the CLI does. It runs with :func:`patched_moto`'s patches (they are
    process-wide, so the server's threads get them) and two more a server
    needs: moto's interpreter calls Batch at ``localhost:$MOTO_PORT``
    (default 5000), so ``MOTO_PORT`` is set to the server's port; and the
    server handles requests on concurrent threads over the same unlocked
    backends, so requests are serialised, as ``patched_moto`` serialises
    in-process calls. ``MOTO_SIMPLE_BATCH_FAIL_AFTER`` is read when a job
    runs, so a test may set it around one execution. Each server starts with
    empty backends. Stopped on every exit.
    """
    import logging
    import os

    import requests
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    lock = threading.Lock()
    dispatch = DomainDispatcherApplication.__call__
    saved_port = os.environ.get("MOTO_PORT")

    def serialised(app, environ, start_response):
        with lock:
            return dispatch(app, environ, start_response)

    with patched_moto():
        DomainDispatcherApplication.__call__ = serialised  # type: ignore[method-assign]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            os.environ["MOTO_PORT"] = str(port)
            url = f"http://{host}:{port}"
            # moto's backends are per process: start empty, as a new account,
            # whatever an earlier module in this test worker left there.
            requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
            requests.post(f"{url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
            yield url
        finally:
            server.stop()
            DomainDispatcherApplication.__call__ = dispatch  # type: ignore[method-assign]
            if saved_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = saved_port
