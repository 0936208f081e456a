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

from kedro_batch_runtime import records
from kedro_batch_runtime.boundaries import Storage
from kedro_batch_runtime.credentials import ENV_CREDENTIALS
from kedro_batch_runtime.layout import (
    RUNS_PREFIX,
    DataLayout,
    bucket_path,
    disk_path,
    run_version,
)
from kedro_batch_runtime.settings import RUN_ID_PARAM
from rich.console import Console

from infra import progress, timeline, timeline_html
from infra.config import Settings
from infra.datasets import Role, boundary_datasets, moved_datasets
from infra.errors import UserError
from infra.graph import PipelineGraph, one_task_per_node
from infra.kedro_project import KedroProject, load_project, loaded
from infra.local_interpreter import ExecutionFailed, Interpreter, Job, LocalBatch
from infra.measured import node_outcome
from infra.ops import task_precedence
from infra.output_paths import checked
from infra.plan import PipelinePlan, plan
from infra.secrets import credentials_needed, local_credentials_document
from infra.synth import Synthesis, stack_settings, synthesize
from infra.task_env import (
    TaskEnv,
    environ,
    missing_module,
    missing_module_message,
    task_env,
)
from infra.tracking import detect, local_server_needed

# What the default .dockerignore keeps out of the image: a task sees the same.
IGNORED_NAMES = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
)
LOG_TAIL_LINES = 40
# The stand-in name local-run plans with when the stack names no credentials secret.
LOCAL_CREDENTIALS_SECRET = "local-run/emulated-credentials"
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
    timeline: Path | None = None
    logs: Path | None = None  # keep every task's log here (else a temporary folder)


class Interrupted(Exception):
    """SIGTERM or SIGINT stopped the run (after cleaning up)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Interrupted`` in the main thread, so both take
    the cleanup path Ctrl-C takes; a second signal during cleanup is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_outputs(options: Options) -> None:
    """Fail before the run, not after it, when a result could not be written."""
    for flag, path, folder in (
        ("--report", options.report, False),
        ("--timeline", options.timeline, False),
        ("--keep", options.keep, True),
        ("--logs", options.logs, True),
    ):
        if path is not None:
            checked(flag, path, folder=folder)


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
    """Put the pipeline's local raw inputs where the tasks will read them.

    Relative paths are read in the project, absolute ones where they are on
    this machine; both go to their place in the bucket, as a user uploads them.
    """
    uploaded: list[str] = []
    for dataset in boundary_datasets(graph, one_task_per_node(graph)):
        if dataset.role is not Role.FREE_INPUT or dataset.storage is not Storage.LOCAL:
            continue
        place = bucket_path(dataset.filepath or "")
        if place is None:
            continue  # out of the project: the plan refused it at a boundary
        local = project / disk_path(dataset.filepath or "")  # an absolute path stays itself
        if not local.exists():
            raise UserError(
                f"raw input {dataset.name!r} is missing: {local} does not exist; create it "
                "(or run the pipeline that produces it) before local-run"
            )
        # A versioned input is a folder of versions: it goes up as it is.
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            rest = path.relative_to(local).as_posix()
            key = place if rest == "." else f"{place}/{rest}"
            s3.upload_file(str(path), bucket, key)
            uploaded.append(key)
    return uploaded


def _written(
    graph: PipelineGraph, bucket: str, run_id: str, started: str, access: Mapping[str, str]
) -> dict[str, str]:
    """Dataset name -> the bucket location this run writes it to."""
    layout = DataLayout(bucket=bucket, run_id=run_id)
    version = run_version(started)
    found = {
        d.name: layout.memory(d.name)
        for d in boundary_datasets(graph, one_task_per_node(graph))
        if d.role is Role.CROSSING and d.storage is Storage.MEMORY
    }
    producers = graph.producers()  # names as written (``x@spark``, not its readers' ``x@pandas``)
    for moved in moved_datasets(graph, access):
        if moved.name in producers:
            found[moved.name] = moved.location(layout, version)
    return found


# --- running one job -----------------------------------------------------------


class _Runner:
    """Runs a job's container command as a subprocess, like Batch would."""

    def __init__(
        self,
        stage: Path,
        workdir: Path,
        base_env: Mapping[str, str],
        bin_dir: Path,
        logs_dir: Path,
    ) -> None:
        self.stage = stage
        self.bin_dir = bin_dir  # the task environment's: the image's entry point lives there
        self.workdir = workdir
        self.base_env = base_env
        self.logs_dir = logs_dir
        self.logs: dict[str, Path] = {}
        self.timing: dict[str, tuple[float, float | None]] = {}
        self._record_lines: dict[str, tuple[int, list[str]]] = {}  # job -> (bytes read, records)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped = False
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> tuple[int, str]:
        overrides = job.params.get("ContainerOverrides", {})
        command = list(overrides.get("Command", []))
        if not command:
            return 1, "job has no command"
        executable = self.bin_dir / command[0]
        if executable.exists():
            command[0] = str(executable)
        env = dict(self.base_env)
        env.update({e["Name"]: e["Value"] for e in overrides.get("Environment", [])})
        cwd = self.workdir / job.job_id
        shutil.copytree(self.stage, cwd, symlinks=True)
        # The container's own disk: scratch files (staged datasets) live and die
        # with it, even when the task is killed before it can clean up.
        scratch = self.workdir / f"{job.job_id}.tmp"
        scratch.mkdir()
        env["TMPDIR"] = str(scratch)
        log = self._log(job)
        started = time.time()
        self.timing[job.job_id] = (started, None)
        # Appended: every attempt of a job in one log, as one log stream per job
        # would show them (records.parse reads the last attempt).
        with log.open("ab") as out, self._lock:
            if self._stopped:  # stopping: start nothing new
                return -signal.SIGTERM, "Cancelled: stopped"
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            self._procs[job.job_id] = proc
        code = proc.wait()
        with self._lock:
            self._procs.pop(job.job_id, None)
        self.timing[job.job_id] = (started, time.time())
        shutil.rmtree(cwd, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        return code, "" if code == 0 else f"Essential container in task exited (exit code {code})"

    def _log(self, job: Job) -> Path:
        with self._lock:
            if job.job_id not in self.logs:
                taken = set(self.logs.values())
                log = self.logs_dir / f"{job.name}.log"
                self.logs[job.job_id] = (
                    log if log not in taken else self.logs_dir / f"{job.name}.{job.job_id}.log"
                )
            return self.logs[job.job_id]

    def terminate_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> None:
        """Start nothing more; end every task's process group (SIGKILL after ``grace``)."""
        with self._lock:
            self._stopped = True
            procs = list(self._procs.values())
        self.terminate_all()
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def tail(self, job_id: str) -> str:
        log = self.logs.get(job_id)
        if log is None or not log.exists():
            return ""
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def record(self, job_id: str) -> records.TaskRecord | None:
        """What the job's log says so far.

        The live display asks several times a second, so each call reads only
        what the log gained since the last one, and keeps only record lines.
        """
        log = self.logs.get(job_id)
        if log is None or not log.exists():
            return None
        offset, kept = self._record_lines.get(job_id, (0, []))
        with log.open("rb") as stream:
            stream.seek(offset)
            data = stream.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        text = complete.decode("utf-8", errors="replace")
        kept = kept + [line for line in text.splitlines() if records.PREFIX in line]
        self._record_lines[job_id] = (offset + len(complete), kept)
        return records.parse(kept)


# --- progress ----------------------------------------------------------------


@dataclass
class NodeRow:
    name: str
    task: str
    status: str = "PENDING"
    started: float | None = None
    finished: float | None = None
    job_id: str | None = None
    attempts: int = 0


def _task_nodes(params: Mapping[str, Any]) -> list[str]:
    command = params.get("ContainerOverrides", {}).get("Command", [])
    return command[command.index("--nodes") + 1].split(",") if "--nodes" in command else []


def _job_status(job: Job) -> str:
    """A local job's status in ``status``'s words."""
    if job.status == "FAILED":
        if job.attempts == 0 or job.exit_code is None:
            return "NOT_RUN"  # failed without running: a dependency failed, or cancelled
        # Terminated because the run was stopping (a sibling failed, Ctrl-C).
        return "CANCELLED" if job.exit_code == -signal.SIGTERM else "FAILED"
    return {"SUCCEEDED": "SUCCEEDED", "RUNNING": "RUNNING"}.get(job.status, "QUEUED")


def _rows(
    graph: PipelineGraph, batch: LocalBatch, runner: _Runner, settled: bool = False
) -> list[NodeRow]:
    """One row per node, with the node's own times from its task's records;
    ``settled`` once the run is over, when waiting means "not run"."""
    settled = settled or batch.cancelled  # after a failure, nothing waiting will start
    waiting = "NOT_RUN" if settled else "PENDING"
    rows = {n.name: NodeRow(name=n.name, task="", status=waiting) for n in graph.nodes}
    for job in batch.jobs():
        status = _job_status(job)
        record = runner.record(job.job_id)
        started, finished = runner.timing.get(job.job_id, (None, None))
        for node in _task_nodes(job.params):
            row = rows[node]
            row.task, row.job_id, row.attempts = job.name, job.job_id, job.attempts
            outcome = node_outcome(node, status, record, started, finished)
            row.started, row.finished = outcome.started, outcome.finished
            row.status = {"CANCELLED": "NOT_RUN", "QUEUED": waiting}.get(
                outcome.status, outcome.status
            )
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


def _job_container(synthesis: Synthesis) -> dict[str, Any]:
    """``containerProperties`` of the deployed job definition."""
    for resource in synthesis.resources:
        if resource["type"] == "aws:batch/jobDefinition:JobDefinition":
            props = resource["inputs"].get("containerProperties")
            return json.loads(props) if isinstance(props, str) else props or {}
    return {}


def _job_environment(synthesis: Synthesis) -> dict[str, str]:
    """Environment of the deployed job definition (bucket, Kedro env, ...)."""
    return {e["name"]: e["value"] for e in _job_container(synthesis).get("environment", [])}


# What a container has of its own, besides what its job definition and the
# state machine set: the caller's other variables are not the job's, so a task
# that reads one here would find nothing on AWS (kedro-batch:environment sets
# plain variables for every job, secretEnv secret ones).
SYSTEM_VARIABLES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM",
        "JAVA_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip


def _system_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of this machine's environment a task keeps (see ``SYSTEM_VARIABLES``)."""
    return {k: v for k, v in environ.items() if k in SYSTEM_VARIABLES or k.startswith("LC_")}


def _emulated_secrets(
    synthesis: Synthesis, document: str | None, console: Console
) -> dict[str, str]:
    """What ECS would put in the job's environment from its ``secrets``, emulated.

    The credentials secret is the project's local credentials files (as
    ``kedro run`` reads them); every ``secretEnv`` variable comes from this
    shell's environment, where ``kedro run`` would find it too.
    """
    names = [s["name"] for s in _job_container(synthesis).get("secrets", [])]
    from_shell = [n for n in names if n != ENV_CREDENTIALS]
    unset = [n for n in from_shell if n not in os.environ]
    if unset:
        console.print(
            f"[yellow]not set in this shell[/]: {', '.join(unset)} (kedro-batch:secretEnv); "
            "tasks run without them, as `kedro run` would"
        )
    values = {n: os.environ[n] for n in from_shell if n in os.environ}
    return {ENV_CREDENTIALS: document, **values} if document else values


def _job_definitions(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    """Job definition ARN -> its inputs: what LocalBatch needs for retries."""
    return {
        r["arn"]: r["inputs"]
        for r in synthesis.resources
        if r["type"] == "aws:batch/jobDefinition:JobDefinition" and "arn" in r
    }


def _with_runtime_params(
    project: KedroProject, pipeline: str, params: Mapping[str, Any], run_id: str
) -> PipelineGraph | None:
    """The pipeline as this run's tasks resolve it, when its configuration uses
    ``${runtime_params:...}`` (paths may depend on them); else ``None``."""
    conf = project.path / "conf"
    # Paths come from catalog files, which may use globals (Kedro's patterns).
    texts = (
        p.read_text(encoding="utf-8", errors="replace")
        for p in conf.rglob("*")
        if p.is_file()
        and any(part.startswith(("catalog", "globals")) for part in p.relative_to(conf).parts)
    )
    if not any("runtime_params:" in text for text in texts):
        return None
    runtime = {**params, RUN_ID_PARAM: run_id}
    return load_project(project.path, [pipeline], project.kedro_env, runtime).pipelines[pipeline]


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
        elif where == "conf" or where.startswith("conf/"):
            # Credentials reach tasks as the emulated secret, never as files.
            skip |= {n for n in names if n.startswith("credentials")}
        return skip

    stage = into / "project"
    shutil.copytree(project, stage, ignore=ignore, symlinks=True)
    return stage


def local_run(options: Options, console: Console | None = None) -> dict[str, Any]:
    """Run one pipeline end to end; returns the report.

    Raises ``UserError`` (before anything runs when it can), and ``Interrupted``
    on SIGTERM or SIGINT once every task process, the embedded S3, an MLflow
    server it started and the temporary folder are gone.
    """
    console = console or Console(stderr=True)
    _check_outputs(options)
    # resources: e.g. an MLflow server, stopped on every exit path
    with _interruptible(), ExitStack() as resources:
        return _local_run(options, console, resources)


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
    # The project's local credentials play the credentials secret, whether or
    # not the stack names one yet (then pulumi up still asks for it).
    credentials = local_credentials_document(settings.project_dir, settings.kedro_env)
    emulated_only = credentials is not None and settings.credentials_secret is None
    if emulated_only:
        overrides["credentialsSecret"] = LOCAL_CREDENTIALS_SECRET
    if mlflow_uri or emulated_only:
        settings = stack_settings(options.stack, overrides)
    deployment = plan(settings)
    graph = deployment.pipelines[pipeline].graph
    synthesis = synthesize(options.stack, overrides)
    definition = synthesis.definitions[pipeline]
    bucket = _bucket(synthesis)
    python = task_env(deployment.project.path)  # cached: the loader has built it
    run_id = f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    console.print(
        f"[bold]local-run[/] {pipeline!r} of {deployment.project.package_name} "
        f"({len(graph.nodes)} nodes, {settings.orchestration}), run id {run_id}"
    )
    if emulated_only and credentials_needed(graph, settings.intermediates, settings.dataset_access):
        console.print(
            "[yellow]kedro-batch:credentialsSecret is not set[/]: tasks get the project's "
            "local credentials here, but `pulumi up` refuses until it names a secret "
            "(README: Credentials and secrets)"
        )
    console.print(loaded(deployment.project), markup=False, highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="kedro-batch-") as tmp, embedded_s3() as endpoint:
        s3 = _s3_client(endpoint)
        s3.create_bucket(Bucket=bucket)
        inputs = _upload_inputs(s3, bucket, deployment.project.path, graph)
        console.print(f"embedded S3 at {endpoint}, bucket {bucket}: {len(inputs)} input files")
        base_env = {
            **_system_environment(os.environ),
            **_job_environment(synthesis),
            "KEDRO_BATCH_BUCKET": bucket,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "DO_NOT_TRACK": "1",
            "KEDRO_DISABLE_TELEMETRY": "true",
        }
        base_env.pop(ENV_CREDENTIALS, None)
        base_env |= _emulated_secrets(synthesis, credentials, console)
        stage = _stage(deployment.project.path, Path(tmp))
        logs = options.logs or Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        runner = _Runner(stage, Path(tmp), environ(python, base_env), python.bin, logs)
        batch = LocalBatch(
            runner,
            options.max_parallel,
            on_cancel=runner.terminate_all,
            job_definitions=_job_definitions(synthesis),
        )
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
        except (KeyboardInterrupt, Interrupted):
            # Step Functions' StopExecution: cancel what waits, end what runs,
            # and only then leave (the temp dir and the S3 server go next).
            batch.cancel("Cancelled: interrupted")
            runner.stop()
            raise
        finally:
            batch.shutdown()
        finished = time.time()
        rows = _rows(graph, batch, runner, settled=True)
        console.print(progress.table(title, _shown(rows)))
        if options.timeline:
            run = _timeline_run(
                deployment.pipelines[pipeline],
                run_id,
                (started.timestamp(), finished, failure is not None),
                batch,
                runner,
                precedence=task_precedence(definition, synthesis.machine_arns),
                expected=_expected_seconds(deployment.pipelines[pipeline]),
            )
            timeline_html.write(options.timeline, run)
            console.print(f"timeline written to {options.timeline}", highlight=False)
        report_graph = _with_runtime_params(deployment.project, pipeline, options.params, run_id)
        started_at = context["Execution"]["StartTime"]
        written = _written(
            report_graph or graph, bucket, run_id, started_at, settings.dataset_access
        )
        report = _report(pipeline, run_id, rows, s3, bucket, written)
        if options.logs:
            for node, row in zip(report["nodes"], rows, strict=True):
                log = runner.logs.get(row.job_id or "")
                node["log"] = str(log) if log else None
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
            for line in _missing_requirements(failed, runner, python, deployment.project.path):
                console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
            report["error"] = {"error": failure.error, "cause": failure.cause[:2000]}
        else:
            console.print(
                f"[green]succeeded[/]: {len(report['datasets'])} datasets written to "
                f"s3://{bucket}/" + ("" if options.keep else " (use --keep DIR to copy them out)")
            )
    if options.report:
        options.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _expected_seconds(pipeline: PipelinePlan) -> float | None:
    """The cost model's run time of the deployed tasks (what ``synth`` and
    ``plan.json`` say), when the stack's ``durations`` cover this pipeline.

    Without them the model knows nothing of the nodes, so the timeline says
    "unknown" rather than show a made-up figure.
    """
    grouping = pipeline.grouping
    if grouping is None or not grouping.durations_known:
        return None
    return grouping.expected.seconds


def _timeline_run(
    pipeline: PipelinePlan,
    run_id: str,
    when: tuple[float, float, bool],
    batch: LocalBatch,
    runner: _Runner,
    *,
    precedence: Mapping[str, frozenset[str]],
    expected: float | None,
) -> timeline.Run:
    """The run as the timeline draws it: each task's last attempt, its records, its log."""
    started, finished, failed = when
    attempts: dict[str, list[Job]] = {}
    for job in batch.jobs():  # in submission order
        nodes = _task_nodes(job.params)
        if nodes:
            attempts.setdefault(",".join(nodes), []).append(job)
    tasks = []
    for task in pipeline.tasks.tasks:
        key = ",".join(task.nodes)
        if key not in attempts:
            tasks.append(timeline.TaskRun(key, task.name, task.nodes, "NOT_RUN"))
            continue
        job = attempts[key][-1]
        record = runner.record(job.job_id)
        began, ended = runner.timing.get(job.job_id, (None, None))
        status = _job_status(job)
        spans = record.spans if record is not None else ()
        error = next((s.error for s in spans if s.status == "FAILED" and s.error), None)
        tasks.append(
            timeline.TaskRun(
                key,
                job.name,
                task.nodes,
                status,
                submitted=job.created,
                started=began,
                finished=ended,
                spans=spans,
                attempts=len(attempts[key]),
                cause=(error or job.status_reason or None) if status == "FAILED" else None,
                log_tail=runner.tail(job.job_id) if status == "FAILED" else "",
            )
        )
    return timeline.Run(
        pipeline=pipeline.name,
        run_id=run_id,
        status="FAILED" if failed else "SUCCEEDED",
        started=started,
        finished=finished,
        tasks=tuple(tasks),
        precedence=precedence,
        expected_seconds=expected,
        source="local-run",
    )


def _missing_requirements(
    failed: Sequence[NodeRow], runner: _Runner, python: TaskEnv, project: Path
) -> list[str]:
    """One line per module a failed task could not import: the requirements
    file forgot it (the environment is built from that file only, like the image)."""
    requirements = None
    if python.requirements is not None:
        requirements = os.path.relpath(python.requirements, project)
    lines: dict[str, None] = {}
    for row in failed:
        module = missing_module(runner.tail(row.job_id or ""))
        if module:
            lines.setdefault(missing_module_message(module, requirements, f"node {row.name}"))
    return list(lines)


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
                "attempts": r.attempts,  # more than 1: a reclaimed task, retried
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
