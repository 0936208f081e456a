"""Cost of the run timeline: layout + HTML for runs of 16 to 2,000 tasks.

    python benchmarks/timeline.py [--repeat 5]

Seeded runs of fused tasks (1-4 nodes each, lognormal node times, 5-60 s of
queueing) on a layered DAG, so the deciding chain walks real precedence.
Prints, per size, the median wall time of ``timeline.layout`` +
``timeline_html.render`` and the page's size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kedro_batch_runtime.records import NodeSpan  # noqa: E402

from infra import timeline, timeline_html  # noqa: E402

T0 = 1_770_000_000.0


def seeded_run(tasks: int, seed: int = 1) -> timeline.Run:
    rnd = random.Random(seed)
    width = max(2, int(tasks**0.5))
    done: list[timeline.TaskRun] = []
    precedence: dict[str, frozenset[str]] = {}
    for i in range(tasks):
        level = i // width
        earlier = done[max(0, (level - 1) * width) : level * width]
        parents = rnd.sample(earlier, min(len(earlier), rnd.randint(0, 2)))
        nodes = tuple(f"ns{i % 7}.node_{i}_{j}" for j in range(rnd.randint(1, 4)))
        submitted = max((p.finished or T0 for p in parents), default=T0) + 0.2
        started = submitted + rnd.uniform(5, 60)
        t = started + 3
        spans = []
        for node in nodes:
            seconds = rnd.lognormvariate(3, 1)
            spans.append(NodeSpan(node, t, t + seconds, "SUCCEEDED"))
            t += seconds
        task = timeline.TaskRun(
            key=",".join(nodes),
            label=nodes[0],
            nodes=nodes,
            status="SUCCEEDED",
            submitted=submitted,
            started=started,
            finished=t + 0.5,
            spans=tuple(spans),
        )
        precedence[task.key] = frozenset(p.key for p in parents)
        done.append(task)
    end = max(t.finished or T0 for t in done)
    return timeline.Run(
        pipeline="__default__",
        run_id=f"bench-{tasks}",
        status="SUCCEEDED",
        started=T0,
        finished=end + 1,
        tasks=tuple(done),
        precedence=precedence,
        expected_seconds=(end - T0) * 0.9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'tasks':>6} {'nodes':>6} {'chain':>6} {'layout+html, median':>20} {'page':>9}")
    for size in (16, 500, 2000):
        run = seeded_run(size)
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            picture = timeline.layout(run)
            page = timeline_html.render(picture)
            times.append(time.perf_counter() - began)
        nodes = sum(len(t.nodes) for t in run.tasks)
        print(
            f"{size:>6} {nodes:>6} {len(picture.chain):>6} "
            f"{statistics.median(times) * 1000:>17.0f} ms {len(page) / 1024:>6.0f} KiB"
        )


if __name__ == "__main__":
    main()
