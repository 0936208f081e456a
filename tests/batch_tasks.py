"""Run tasks the way a deployment does, on this machine: helpers for tests.

Each task is a ``kedro-batch-task`` process in a fresh copy of the project
without ``data/`` (as in the image), against an S3 endpoint served by moto
on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

TASK_COMMAND = str(Path(sys.executable).parent / "kedro-batch-task")
QUIET_KEDRO_ENV = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL_S3": self.url}

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))

    def upload_tree(self, bucket: str, root: Path, under: str) -> None:
        """Upload ``root/under/**`` to ``s3://bucket/under/**``."""
        client = self.client()
        for path in sorted((root / under).rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                client.upload_file(str(path), bucket, path.relative_to(root).as_posix())


@contextmanager
def moto_s3(*buckets: str) -> Iterator[S3Endpoint]:
    """An S3 endpoint on loopback, with ``buckets`` created, for the block's duration."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}")
        for bucket in buckets:
            endpoint.client().create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def fresh_project(project: Path, workdir: Path) -> Path:
    """A copy of ``project`` as the image holds it: no ``data/``, no ``conf/local``
    contents, no credentials files."""
    target = workdir / project.name
    skip = shutil.ignore_patterns("data", "__pycache__", ".ruff_cache", "sessions", "info.log")

    def ignore(directory: str, names: list[str]) -> set[str]:
        where = Path(directory).relative_to(project).parts
        ignored = set(skip(directory, names))
        if where[:1] == ("conf",):
            ignored |= {
                n for n in names if n.startswith("credentials") or where == ("conf", "local")
            }
        return ignored

    shutil.copytree(project, target, ignore=ignore)
    return target


def task_env(
    *,
    run_id: str,
    started: str,
    bucket: str,
    endpoint: S3Endpoint,
    params: Mapping[str, Any] | None = None,
    pipeline: str = "__default__",
    intermediates: str = "persist",
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEDRO_BATCH_", "AWS_"))}
    return {
        **env,
        **QUIET_KEDRO_ENV,
        **endpoint.env,
        "KEDRO_BATCH_RUN_ID": run_id,
        "KEDRO_BATCH_RUN_STARTED": started,
        "KEDRO_BATCH_PARAMS": json.dumps(dict(params or {})),
        "KEDRO_BATCH_PIPELINE": pipeline,
        "KEDRO_BATCH_BUCKET": bucket,
        "KEDRO_BATCH_INTERMEDIATES": intermediates,
    }


def run_task(
    project: Path, workdir: Path, nodes: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``kedro-batch-task --nodes ...`` in a fresh copy of ``project`` under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cwd = fresh_project(project, workdir)
    return subprocess.run(
        [TASK_COMMAND, "--nodes", ",".join(nodes)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )


def kedro_run(project: Path, workdir: Path, *args: str) -> Path:
    """A plain ``kedro run`` in a copy of ``project`` (with its data); returns the copy."""
    target = workdir / project.name
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("__pycache__", ".ruff_cache"))
    for layer in (target / "data").iterdir():
        if layer.is_dir() and layer.name != "01_raw":
            shutil.rmtree(layer)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEDRO_BATCH_")}
    subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", *args],
        cwd=target,
        env={**env, **QUIET_KEDRO_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return target
