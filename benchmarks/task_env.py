"""How long the image-like project environment takes: built, rebuilt, reused.

    python benchmarks/task_env.py [PROJECT_DIR]   (default: example)

Builds the project's environment (infra/task_env.py) into a throwaway cache,
three ways: with an empty uv download cache (a fresh machine or CI runner),
with uv's cache warm (a new requirements file or runtime change), and a cache
hit (every later synth and local-run). Prints seconds for each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = "from pathlib import Path; import sys; from infra.task_env import task_env; " \
    "task_env(Path(sys.argv[1]))"  # fmt: skip


def _timed(project: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", BUILD, str(project)], cwd=ROOT, env=env, check=True,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    project = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "example").resolve()
    with tempfile.TemporaryDirectory() as cold_uv, tempfile.TemporaryDirectory() as envs:
        base = {**os.environ, "KEDRO_BATCH_CACHE_DIR": envs}
        cold = _timed(project, {**base, "UV_CACHE_DIR": cold_uv})
        with tempfile.TemporaryDirectory() as envs_again:
            warm = _timed(project, {**base, "KEDRO_BATCH_CACHE_DIR": envs_again})
        hit = _timed(project, base)
    print(f"{project.name}: empty uv cache {cold:.1f} s, warm uv cache {warm:.1f} s, "
          f"cache hit {hit:.2f} s (load average {os.getloadavg()[0]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
