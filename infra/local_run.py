"""``python -m infra local-run``: the deployment itself, on this machine.

Before paying for AWS a user wants to see the exact definition ``pulumi up``
would deploy work: every task in a fresh process and a fresh copy of the
project without ``data/``, data crossing only through object storage. The
definition comes from the offline synth of the stack; S3 is a moto server on
127.0.0.1 (a free port, stopped on every exit path); Batch is
:class:`infra.local_interpreter.LocalBatch` running each job's container
command as a subprocess with the environment the job would get.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from kedro_batch_runtime.boundaries import Storage
from kedro_batch_runtime.layout import (
    RUNS_PREFIX,
    DataLayout,
    project_relative,
    run_version,
    versioned_path,
)
from rich.console import Console

from infra import progress
from infra.config import Settings
from infra.datasets import Role, boundary_datasets, storage_of
from infra.errors import UserError
from infra.graph import PipelineGraph, one_task_per_node
from infra.kedro_project import load_project
from infra.local_interpreter import ExecutionFailed, Interpreter, Job, LocalBatch
from infra.plan import plan
from infra.synth import Synthesis, stack_settings, synthesize
from infra.tracking import detect, local_server_needed

# What the default .dockerignore keeps out of the image: a task sees the same.
IGNORED_NAMES = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
)
LOG_TAIL_LINES = 40
REGION = "us-east-1"
MLFLOW_START_SECONDS = 180  # a loaded 2-CPU machine takes tens of seconds


@dataclass
class Options:
    stack: str = "dev"
    overrides: Mapping[str, str] = field(default_factory=dict)
    pipeline: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    keep: Path | None = None
    max_parallel: int = os.cpu_count() or 2


def parse_params(text: str | None) -> dict[str, Any]:
    """``k=v,a.b=2`` -> nested dict, values typed as Kedro's ``--params`` does."""
    import yaml

    result: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--params: expected key=value pairs separated by commas, got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else ""
        target = result
        *parents, last = key.strip().split(".")
        for name in parents:
            target = target.setdefault(name, {})
        target[last] = value
    return result


# --- embedded S3 -------------------------------------------------------------


@contextmanager
def embedded_s3() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 and a free port; always stopped."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- MLflow tracking server ------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def tracking_server(store: Path) -> Iterator[str]:
    """An MLflow tracking server on 127.0.0.1 and a free port; always stopped.

    Runs and artifacts are kept under ``store`` (``mlflow.db`` and
    ``artifacts/``), so ``mlflow ui --backend-store-uri sqlite:///<store>/mlflow.db``
    shows them after the run.
    """
    import urllib.request

    store.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = store / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", (store / "artifacts").as_uri(),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + MLFLOW_START_SECONDS
        while True:
            if proc.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
                raise UserError(f"the MLflow tracking server did not start: {' / '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise UserError(
                    f"the MLflow tracking server did not answer on {url} within "
                    f"{MLFLOW_START_SECONDS} s; see {log}"
                )
            time.sleep(0.5)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tracking_uri(
    options: Options, settings: Settings, resources: ExitStack, console: Console
) -> str | None:
    """The tracking URI this run's tasks log to, when the project uses kedro-mlflow:
    the project's own when it names a server, else a server started here."""
    facts = load_project(settings.project_dir, settings.pipelines, settings.kedro_env).mlflow
    if not detect(facts).on:
        return None
    if facts.uri and not local_server_needed(facts):
        uri = facts.uri
    else:
        store = (
            options.keep / "mlflow"
            if options.keep
            else Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-")))
        )
        uri = resources.enter_context(tracking_server(store))
        where = f", runs kept in {store}" if options.keep else ""
        console.print(f"MLflow tracking server at {uri}{where}")
    return uri


def _mlflow_report(s3: Any, bucket: str, run_id: str, uri: str) -> dict[str, Any]:
    """The shared MLflow run the tasks recorded in the bucket (``mlflow_run.RUN_FILE``)."""
    from kedro_batch_runtime.mlflow_run import FOLDER, RUN_FILE

    key = f"{RUNS_PREFIX}/{run_id}/{FOLDER}/{RUN_FILE}"
    try:
        found = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return {"tracking_uri": uri, "run_id": None}
    url = f"{uri}/#/experiments/{found['experiment_id']}/runs/{found['run_id']}"
    return {"tracking_uri": uri, **found, "url": url if uri.startswith("http") else None}


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _upload_inputs(s3: Any, bucket: str, project: Path, graph: PipelineGraph) -> list[str]:
    """Put the pipeline's local raw inputs where the tasks will read them."""
    layout = DataLayout(bucket=bucket, run_id="")
    uploaded: list[str] = []
    for dataset in boundary_datasets(graph, one_task_per_node(graph)):
        if dataset.role is not Role.FREE_INPUT or dataset.storage is not Storage.LOCAL:
            continue
        relative = project_relative(dataset.filepath or "")
        if relative is None:
            continue  # an absolute path: read in place, as the runtime does
        local = project / relative
        if not local.exists():
            raise UserError(
                f"raw input {dataset.name!r} is missing: {local} does not exist; create it "
                "(or run the pipeline that produces it) before local-run"
            )
        # A versioned input is a folder of versions: it goes up as it is.
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            key = layout.shared(path.relative_to(project).as_posix()).removeprefix(
                f"s3://{bucket}/"
            )
            s3.upload_file(str(path), bucket, key)
            uploaded.append(key)
    return uploaded


def _written(graph: PipelineGraph, bucket: str, run_id: str, started: str) -> dict[str, str]:
    """Dataset name -> the bucket location this run writes it to."""
    layout = DataLayout(bucket=bucket, run_id=run_id)
    version = run_version(started)
    crossing = {
        d.name
        for d in boundary_datasets(graph, one_task_per_node(graph))
        if d.role is Role.CROSSING and d.storage is Storage.MEMORY
    }
    found: dict[str, str] = {}
    for name in graph.producers():
        facts = graph.datasets.get(name)
        if name in crossing:
            found[name] = layout.memory(name)
        elif facts and facts.filepath and storage_of(graph, name) is Storage.LOCAL:
            relative = project_relative(facts.filepath)
            if relative is not None:
                uri = layout.local(relative, produced=True, versioned=facts.versioned)
                found[name] = versioned_path(uri, version) if facts.versioned else uri
    return found


# --- running one job -----------------------------------------------------------


class _Runner:
    """Runs a job's container command as a subprocess, like Batch would."""

    def __init__(self, stage: Path, workdir: Path, base_env: Mapping[str, str]) -> None:
        self.stage = stage
        self.workdir = workdir
        self.base_env = base_env
        self.logs: dict[str, Path] = {}
        self.timing: dict[str, tuple[float, float | None]] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> tuple[int, str]:
        overrides = job.params.get("ContainerOverrides", {})
        command = list(overrides.get("Command", []))
        if not command:
            return 1, "job has no command"
        executable = Path(sys.executable).parent / command[0]
        if executable.exists():
            command[0] = str(executable)
        env = dict(self.base_env)
        env.update({e["Name"]: e["Value"] for e in overrides.get("Environment", [])})
        cwd = self.workdir / job.job_id
        shutil.copytree(self.stage, cwd, symlinks=True)
        log = self.workdir / f"{job.job_id}.log"
        self.logs[job.job_id] = log
        started = time.time()
        self.timing[job.job_id] = (started, None)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            with self._lock:
                self._procs[job.job_id] = proc
            code = proc.wait()
        with self._lock:
            self._procs.pop(job.job_id, None)
        self.timing[job.job_id] = (started, time.time())
        shutil.rmtree(cwd, ignore_errors=True)
        return code, "" if code == 0 else f"Essential container in task exited (exit code {code})"

    def terminate_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    def tail(self, job_id: str) -> str:
        log = self.logs.get(job_id)
        if log is None or not log.exists():
            return ""
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


# --- progress ----------------------------------------------------------------


@dataclass
class NodeRow:
    name: str
    task: str
    status: str = "PENDING"
    started: float | None = None
    finished: float | None = None
    job_id: str | None = None


def _task_nodes(params: Mapping[str, Any]) -> list[str]:
    command = params.get("ContainerOverrides", {}).get("Command", [])
    return command[command.index("--nodes") + 1].split(",") if "--nodes" in command else []


def _rows(graph: PipelineGraph, batch: LocalBatch, runner: _Runner) -> list[NodeRow]:
    rows = {n.name: NodeRow(name=n.name, task="") for n in graph.nodes}
    for job in batch.jobs():
        for node in _task_nodes(job.params):
            row = rows[node]
            row.task, row.job_id = job.name, job.job_id
            started, finished = runner.timing.get(job.job_id, (None, None))
            row.started, row.finished = started, finished
            row.status = {
                "SUCCEEDED": "SUCCEEDED",
                "RUNNING": "RUNNING",
                "FAILED": "FAILED" if job.exit_code not in (None, -signal.SIGTERM) else "NOT_RUN",
            }.get(job.status, "PENDING")
    return list(rows.values())


def _shown(rows: Sequence[NodeRow]) -> list[progress.Row]:
    now = time.time()
    return [
        progress.Row(
            r.name, r.status, None if r.started is None else (r.finished or now) - r.started
        )
        for r in rows
    ]


class _Display:
    """Polls the rows in a thread and shows them (``infra.progress``)."""

    def __init__(self, console: Console, title: str, rows: Callable[[], list[NodeRow]]) -> None:
        self.rows = rows
        self._progress = progress.Progress(console, title)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._progress.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._progress.update(_shown(self.rows()))
        self._progress.__exit__(None, None, None)

    def _loop(self) -> None:
        while not self._done.wait(0.25):
            self._progress.update(_shown(self.rows()))


# --- the command ---------------------------------------------------------------


def _job_environment(synthesis: Synthesis) -> dict[str, str]:
    """Environment of the deployed job definition (bucket, Kedro env, ...)."""
    for resource in synthesis.resources:
        if resource["type"] == "aws:batch/jobDefinition:JobDefinition":
            props = resource["inputs"].get("containerProperties")
            container = json.loads(props) if isinstance(props, str) else props or {}
            return {e["name"]: e["value"] for e in container.get("environment", [])}
    return {}


def _bucket(synthesis: Synthesis) -> str:
    for resource in synthesis.resources:
        if resource["type"].startswith("aws:s3/bucket"):
            return str(resource["inputs"].get("bucket") or resource["name"])
    raise UserError("the stack registers no S3 bucket; local-run needs the data bucket")


def _stage(project: Path, into: Path) -> Path:
    """The project as the image holds it: no data, no local secrets."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        where = Path(directory).relative_to(project).as_posix()
        skip = {n for n in names if n in IGNORED_NAMES or n.endswith(".pyc")}
        if where == ".":
            skip |= {"data"} & set(names)
        elif where == "conf/local":
            # Kept as an empty folder: Kedro's default run env is "local".
            skip |= set(names)
        return skip

    stage = into / "project"
    shutil.copytree(project, stage, ignore=ignore, symlinks=True)
    return stage


def local_run(options: Options, console: Console | None = None) -> dict[str, Any]:
    """Run one pipeline end to end; returns the report. Raises ``UserError``."""
    with ExitStack() as resources:  # e.g. an MLflow server, stopped on every exit path
        return _local_run(options, console or Console(stderr=True), resources)


def _local_run(options: Options, console: Console, resources: ExitStack) -> dict[str, Any]:
    overrides = dict(options.overrides)
    settings = stack_settings(options.stack, overrides)
    pipeline = options.pipeline or settings.pipelines[0]
    if pipeline not in settings.pipelines:  # run one the stack does not deploy (yet)
        overrides["pipelines"] = json.dumps([*settings.pipelines, pipeline])
        settings = stack_settings(options.stack, overrides)
    mlflow_uri = _tracking_uri(options, settings, resources, console)
    if mlflow_uri:  # the jobs log there, as on AWS they log to the stack's server
        overrides["mlflowTrackingUri"] = mlflow_uri
        settings = stack_settings(options.stack, overrides)
    deployment = plan(settings)
    graph = deployment.pipelines[pipeline].graph
    synthesis = synthesize(options.stack, overrides)
    definition = synthesis.definitions[pipeline]
    bucket = _bucket(synthesis)
    run_id = f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    console.print(
        f"[bold]local-run[/] {pipeline!r} of {deployment.project.package_name} "
        f"({len(graph.nodes)} nodes, {settings.orchestration}), run id {run_id}"
    )
    with tempfile.TemporaryDirectory(prefix="kedro-batch-") as tmp, embedded_s3() as endpoint:
        s3 = _s3_client(endpoint)
        s3.create_bucket(Bucket=bucket)
        inputs = _upload_inputs(s3, bucket, deployment.project.path, graph)
        console.print(f"embedded S3 at {endpoint}, bucket {bucket}: {len(inputs)} input files")
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **_job_environment(synthesis),
            "KEDRO_BATCH_BUCKET": bucket,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "DO_NOT_TRACK": "1",
            "KEDRO_DISABLE_TELEMETRY": "true",
        }
        runner = _Runner(_stage(deployment.project.path, Path(tmp)), Path(tmp), base_env)
        batch = LocalBatch(runner, options.max_parallel, on_cancel=runner.terminate_all)
        started = datetime.now(UTC)
        context = {
            "Execution": {
                "Name": run_id,
                "Id": f"arn:aws:states:{REGION}:000000000000:execution:local:{run_id}",
                "StartTime": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        }
        failure: ExecutionFailed | None = None
        title = f"{pipeline} · {run_id}"
        try:
            with _Display(console, title, lambda: _rows(graph, batch, runner)):
                try:
                    interpreter = Interpreter(
                        definition, batch, context, machines=synthesis.machine_arns
                    )
                    interpreter.run({"params": options.params})
                except ExecutionFailed as exc:
                    failure = exc
        except KeyboardInterrupt:
            batch.cancel("Cancelled: interrupted")
            raise
        finally:
            batch.shutdown()
        rows = _rows(graph, batch, runner)
        console.print(progress.table(title, _shown(rows)))
        written = _written(graph, bucket, run_id, context["Execution"]["StartTime"])
        report = _report(pipeline, run_id, rows, s3, bucket, written)
        if mlflow_uri:
            report["mlflow"] = _mlflow_report(s3, bucket, run_id, mlflow_uri)
            console.print(
                f"MLflow run {report['mlflow']['run_id']}: "
                f"{report['mlflow'].get('url') or mlflow_uri}"
            )
        if options.keep:
            _download(s3, bucket, options.keep)
            console.print(
                f"bucket copied to {options.keep}/; this run's unversioned outputs are in "
                f"{options.keep}/{RUNS_PREFIX}/{run_id}/"
            )
        if failure is not None:
            failed = [r for r in rows if r.status == "FAILED"]
            for row in failed:
                console.print(f"[bold red]node {row.name} failed[/]; last log lines:")
                console.print(runner.tail(row.job_id or ""), markup=False, highlight=False)
            report["error"] = {"error": failure.error, "cause": failure.cause[:2000]}
        else:
            console.print(
                f"[green]succeeded[/]: {len(report['datasets'])} datasets written to "
                f"s3://{bucket}/ (use --keep DIR to copy them out)"
            )
    if options.report:
        options.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _report(
    pipeline: str,
    run_id: str,
    rows: Sequence[NodeRow],
    s3: Any,
    bucket: str,
    written: Mapping[str, str],
) -> dict[str, Any]:
    sizes = {
        o["Key"]: o["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    datasets = []
    for name, uri in written.items():
        key = uri.removeprefix(f"s3://{bucket}/")
        # A dataset is one object or, for folder-like datasets, a prefix.
        parts = [n for k, n in sizes.items() if k == key or k.startswith(key + "/")]
        if parts:
            datasets.append({"name": name, "uri": uri, "bytes": sum(parts)})
    return {
        "pipeline": pipeline,
        "run_id": run_id,
        "nodes": [
            {
                "name": r.name,
                "task": r.task,
                "status": r.status if r.status in ("SUCCEEDED", "FAILED") else "NOT_RUN",
                "started": r.started,
                "finished": r.finished,
            }
            for r in rows
        ],
        "datasets": datasets,
    }


def _download(s3: Any, bucket: str, into: Path) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            target = into / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
