"""The ASL compiler: contract 3 and 4 of DESIGN.md, on random and named DAGs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statelint.linter import Linter

from infra import asl
from infra.errors import UserError
from infra.graph import NodeInfo, PipelineGraph
from infra.layout import by_levels, critical_path, makespan
from tests import simulate

QUEUE = "arn:aws:batch:eu-west-1:123456789012:job-queue/kedro-batch-queue-1a2b3c4"
JOBDEF = "arn:aws:batch:eu-west-1:123456789012:job-definition/kedro-batch-job-5d6e7f8:3"


def graph(parents: Mapping[str, list[str]], name: str = "p") -> PipelineGraph:
    return PipelineGraph(
        name=name,
        nodes=tuple(NodeInfo(name=n) for n in parents),
        parents={n: frozenset(ps) for n, ps in parents.items()},
    )


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 22) -> PipelineGraph:
    n = draw(st.integers(1, max_nodes))
    # Kedro-ish names, some of which collide once cleaned for Batch.
    names = [f"ns{i % 3}.node_{i}" if i % 4 else f"ns{i % 3}_node_{i - 1}" for i in range(n)]
    names = list(dict.fromkeys(names))
    parents = {
        name: [p for p in names[:i] if draw(st.booleans()) and draw(st.booleans())]
        for i, name in enumerate(names)
    }
    return graph(parents)


@st.composite
def sp_dags(draw: st.DrawFn, max_leaves: int = 16) -> PipelineGraph:
    """Series-parallel DAGs, built by composition (with transitive edges)."""
    counter = iter(range(10_000))

    def build(size: int) -> tuple[list[str], list[str], dict[str, set[str]]]:
        if size == 1:
            n = f"t.n{next(counter)}"
            return [n], [n], {n: set()}
        left = draw(st.integers(1, size - 1))
        a_src, a_snk, a = build(left)
        b_src, b_snk, b = build(size - left)
        if draw(st.booleans()):  # series: every sink of a before every source of b
            for s in b_src:
                b[s] |= set(a_snk)
            if draw(st.booleans()):  # a transitive edge changes nothing
                b[b_snk[0]] |= {a_src[0]}
            return a_src, b_snk, {**a, **b}
        return a_src + b_src, a_snk + b_snk, {**a, **b}

    _, _, parents = build(draw(st.integers(1, max_leaves)))
    return graph({k: sorted(v) for k, v in parents.items()})


durations_for = st.floats(0.1, 100.0, allow_nan=False, allow_infinity=False)


def build(g: PipelineGraph, mode: str = "structured", **kw: object) -> dict:
    return asl.build_definition(g, job_queue=QUEUE, job_definition=JOBDEF, mode=mode, **kw)


def tasks(definition: Mapping) -> list[dict]:
    """The Task states that submit Batch jobs (not exact mode's DescribeJobs)."""
    return [
        s
        for _, s in asl.iter_states(definition)
        if s["Type"] == "Task" and s["Resource"] != asl.DESCRIBE_JOBS
    ]


@settings(max_examples=60, deadline=None)
@given(g=dags(), data=st.data())
def test_structured_runs_each_node_once_after_its_parents(g: PipelineGraph, data: st.DataObject):
    seconds = {n: data.draw(durations_for) for n in g.node_names}
    definition = build(g, durations=seconds)
    run = simulate.structured(definition, seconds)
    assert sorted(run.runs) == sorted(g.node_names)
    for node, parents in g.parents.items():
        for p in parents:
            assert run.spans[p][1] <= run.spans[node][0] + 1e-9, f"{node} started before {p}"


@settings(max_examples=60, deadline=None)
@given(g=sp_dags(), data=st.data())
def test_series_parallel_dags_add_no_precedence(g: PipelineGraph, data: st.DataObject):
    seconds = {n: data.draw(durations_for) for n in g.node_names}
    run = simulate.structured(build(g, durations=seconds), seconds)
    finish = max(f for _, f in run.spans.values())
    assert finish == pytest.approx(critical_path(g.node_names, g.parents, seconds))


@settings(max_examples=60, deadline=None)
@given(g=dags(), data=st.data())
def test_structured_never_slower_than_one_parallel_per_level(g: PipelineGraph, data):
    seconds = {n: data.draw(durations_for) for n in g.node_names}
    run = simulate.structured(build(g, durations=seconds), seconds)
    finish = max(f for _, f in run.spans.values())
    assert finish <= makespan(by_levels(g.node_names, g.parents), seconds) + 1e-6


@settings(max_examples=60, deadline=None)
@given(g=dags(max_nodes=45))
def test_exact_depends_on_matches_node_dependencies(g: PipelineGraph):
    definition = build(g, "exact")
    run = simulate.exact(definition)
    assert sorted(n for n, _ in run.jobs.values() if n) == sorted(g.node_names)
    assert simulate.node_ancestors(run) == {n: set(ps) for n, ps in g.parents.items()}
    assert all(len(deps) <= asl.MAX_DEPENDS_ON for _, deps in run.jobs.values())
    sinks = {n for n in g.node_names if not any(n in ps for ps in g.parents.values())}
    final = run.jobs["final"]
    assert final[0] is None

    def behind(deps: list[str]) -> set[str]:
        found: set[str] = set()
        for d in deps:
            nodes, more = run.jobs[d]
            found |= {nodes} if nodes else behind(more)
        return found

    assert behind(final[1]) == sinks


@settings(max_examples=40, deadline=None)
@given(g=dags(), mode=st.sampled_from(asl.MODES))
def test_every_definition_passes_statelint(g: PipelineGraph, mode: str):
    assert Linter.validate(build(g, mode)) == []


def test_wide_fan_in_uses_barrier_jobs():
    parents = {f"src.n{i}": [] for i in range(45)}
    parents["sink"] = list(parents)
    run = simulate.exact(build(graph(parents), "exact"))
    barriers = [k for k, (nodes, _) in run.jobs.items() if nodes is None and k != "final"]
    assert len(barriers) == 3  # 45 parents -> 3 barriers of <= 20
    assert simulate.node_ancestors(run)["sink"] == {f"src.n{i}" for i in range(45)}


@pytest.mark.parametrize("mode", asl.MODES)
def test_names_are_valid_and_unique_when_kedro_names_collide(mode: str):
    long = "pkg." + "very_long_namespace." * 8 + "node"
    g = graph({"prep.clean": [], "prep_clean": [], "prep clean": [], long: [], long + "2": []})
    definition = build(g, mode)
    names = [n for n, _ in asl.iter_states(definition)]
    assert len(names) == len(set(names))
    assert all(len(n) <= asl.MAX_STATE_NAME for n in names)
    job_names = [t["Parameters"]["JobName"] for t in tasks(definition)]
    assert len(job_names) == len(set(job_names))
    for job in job_names:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", job), job
    assert Linter.validate(definition) == []


@pytest.mark.parametrize("mode", asl.MODES)
def test_job_names_of_accented_node_names_drop_the_accents_and_stay_unique(mode: str):
    g = graph({"été": [], "ete": ["été"], "données.résumé": ["ete"], "naïve_café": []})
    definition = build(g, mode)
    job_names = {simulate.task_nodes(t): t["Parameters"]["JobName"] for t in tasks(definition)}
    # not n_t_; whichever comes second gets a hash, so both stay unique
    clash = sorted([job_names["été"], job_names["ete"]], key=len)
    assert clash[0] == "ete" and re.fullmatch(r"ete-[0-9a-f]{7}", clash[1])
    assert job_names["données.résumé"] == "donnees_resume"
    assert job_names["naïve_café"] == "naive_cafe"
    assert Linter.validate(definition) == []


@pytest.mark.parametrize("mode", asl.MODES)
def test_task_command_and_environment(mode: str):
    g = graph({"a.x": [], "b.y": ["a.x"]})
    for task in tasks(build(g, mode, pipeline_name="p")):
        overrides = task["Parameters"]["ContainerOverrides"]
        command = overrides["Command"]
        assert all(isinstance(c, str) for c in command)
        assert overrides["Environment.$"] == "$.env"
        nodes = simulate.task_nodes(task)
        if nodes is not None:
            assert command[command.index("--nodes") + 1] in {"a.x", "b.y"}
        assert task["Retry"][0]["ErrorEquals"] == [
            "Batch.AWSBatchException",
            "Batch.BatchException",
            "Batch.ServerException",
            "Batch.TooManyRequestsException",
        ]
        assert task["Retry"][0]["JitterStrategy"] == "FULL"
        # Batch's several-KB job description never reaches the state payload.
        assert task["ResultPath"] is None or "ResultSelector" in task


def test_grouped_tasks_list_all_their_nodes_after_nodes_flag():
    g = graph({"a": [], "b": ["a"], "c": ["b"]})
    definition = build(g, groups=[["a", "b"], ["c"]])
    commands = [simulate.task_nodes(t) for t in tasks(definition)]
    assert commands == ["a,b", "c"]


def test_structured_catches_nothing_so_redrive_resumes_at_the_failed_node():
    # RedriveExecution continues from the unsuccessful state: a Catch leading
    # to a Fail state would make that the Fail state, and redrive useless.
    definition = build(graph({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}))
    states = [s for _, s in asl.iter_states(definition)]
    assert not any("Catch" in s for s in states)
    assert not any(s["Type"] == "Fail" for s in states)


def test_odd_node_names_stay_valid():
    definition = build(graph({"it's {odd}": [], "päckage.nöde": ["it's {odd}"]}))
    assert Linter.validate(definition) == []
    assert [simulate.task_nodes(t) for t in tasks(definition)] == ["it's {odd}", "päckage.nöde"]


def test_empty_params_are_defaulted_and_payload_stays_small():
    definition = build(graph({"a": []}))
    start = definition["States"][definition["StartAt"]]
    assert start["Type"] == "Choice"
    assert definition["States"][start["Default"]]["Result"] == {}
    assert asl.limits(definition).payload_bytes < 4096


@pytest.mark.parametrize("mode", asl.MODES)
def test_run_context_carries_queue_definition_and_environment(mode: str):
    definition = build(graph({"a.x": []}), mode, pipeline_name="p")
    context = definition["States"]["StartRun"]["Parameters"]
    assert context[asl.CONTEXT_QUEUE] == QUEUE
    assert context[asl.CONTEXT_DEFINITION] == JOBDEF
    env = {e["Name"]: e for e in context[asl.CONTEXT_ENV]}
    assert env[asl.ENV_RUN_ID]["Value.$"] == "$$.Execution.Name"
    assert env[asl.ENV_RUN_STARTED]["Value.$"] == "$$.Execution.StartTime"
    assert env[asl.ENV_PARAMS]["Value.$"] == "States.JsonToString($.params)"
    assert env[asl.ENV_PIPELINE]["Value"] == "p"


def test_per_task_queue_and_resources_override_the_context():
    spec = asl.JobSpec(
        job_queue="gpu-q", job_definition="gpu-d", resource_requirements={"GPU": "1"}
    )
    definition = build(graph({"a": [], "b": ["a"]}), jobs={"b": spec})
    a, b = (definition["States"][n]["Parameters"] for n in ("a", "b"))
    assert a["JobQueue.$"] == "$.q" and a["JobDefinition.$"] == "$.d"
    assert b["JobQueue"] == "gpu-q" and b["JobDefinition"] == "gpu-d"
    assert b["ContainerOverrides"]["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]


def test_unknown_mode_is_a_user_error():
    with pytest.raises(UserError, match="kedro-batch:orchestration"):
        build(graph({"a": []}), "fastest")


def test_empty_pipeline_is_a_user_error():
    with pytest.raises(UserError, match="no nodes"):
        build(graph({}))


def test_definition_over_one_megabyte_is_refused_with_the_figures():
    huge = graph({f"n{i}." + "x" * 60: [] for i in range(1500)})
    definition = build(huge, "exact")
    with pytest.raises(UserError, match=r"over Step Functions' 1,048,576-byte limit"):
        asl.check_limits(definition, "huge")


def test_history_events_over_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch):
    definition = build(graph({f"n{i}": [] for i in range(50)}))
    monkeypatch.setattr(asl, "MAX_HISTORY_EVENTS", 100)
    with pytest.raises(UserError, match=r"about \d+ history events, over .* limit of 100"):
        asl.check_limits(definition, "p")


def test_kedro_pipeline_object_is_accepted():
    from kedro.pipeline import Pipeline, node

    def f(x):
        return x

    pipe = Pipeline([node(f, "a", "b", name="one"), node(f, "b", "c", name="two")], namespace="ns")
    definition = asl.build_definition(pipe, job_queue=QUEUE, job_definition=JOBDEF)
    assert [simulate.task_nodes(t) for t in tasks(definition)] == ["ns.one", "ns.two"]
    json.dumps(definition)  # plain JSON


def layered(n: int, seed: int = 1) -> PipelineGraph:
    """A Kedro-like pipeline: layers of 1-12 nodes reading 1-2 of the last three layers."""
    import random

    rng = random.Random(seed)
    layers: list[list[str]] = []
    names: list[str] = []
    while len(names) < n:
        layer = [
            f"ns{(len(names) + i) % 7}.step_{len(names) + i:05d}"
            for i in range(min(rng.randint(1, 12), n - len(names)))
        ]
        layers.append(layer)
        names += layer
    parents = {}
    for i, layer in enumerate(layers):
        pool = [t for lay in layers[max(0, i - 3) : i] for t in lay]
        for t in layer:
            parents[t] = rng.sample(pool, min(len(pool), rng.randint(1, 2))) if pool else []
    return graph(parents)


def test_eighteen_hundred_nodes_fit_one_machine():
    g = layered(1800)
    machines = asl.build_machines(g, job_queue=QUEUE, job_definition=JOBDEF)
    assert [m.key for m in machines] == [""]
    usage = asl.check_limits(machines[0].template, "p")
    assert usage.definition_bytes <= asl.MAX_DEFINITION_BYTES


def test_five_thousand_nodes_split_into_parts_within_every_limit():
    g = layered(5000)
    machines = asl.build_machines(g, job_queue=QUEUE, job_definition=JOBDEF)
    parent = machines[-1]
    assert parent.key == "" and len(machines) > 2
    assert set(parent.children) == {m.key for m in machines[:-1]}
    arns = {
        m.key: f"arn:aws:states:eu-west-1:123456789012:stateMachine:p-{m.key}" for m in machines
    }
    definitions = {arns[m.key]: m.definition(arns) for m in machines}
    for definition in definitions.values():
        asl.check_limits(definition, "p")
        assert Linter.validate(definition) == []
    seconds = dict.fromkeys(g.node_names, 1.0)
    run = simulate.structured(definitions[arns[""]], seconds, definitions)
    assert sorted(run.runs) == sorted(g.node_names)
    for node, parents in g.parents.items():
        for p in parents:
            assert run.spans[p][1] <= run.spans[node][0]


def test_split_does_not_depend_on_arns():
    g = layered(5000)
    short = asl.build_machines(g, job_queue="q", job_definition="d")
    long = asl.build_machines(g, job_queue=QUEUE * 3, job_definition=JOBDEF * 3)
    assert [m.key for m in short] == [m.key for m in long]


def test_five_thousand_nodes_in_exact_mode_split_and_keep_every_dependency():
    g = layered(5000)
    machines = asl.build_machines(g, job_queue=QUEUE, job_definition=JOBDEF, mode="exact")
    assert len(machines) > 2 and machines[-1].key == ""
    arns = {
        m.key: f"arn:aws:states:eu-west-1:123456789012:stateMachine:p-{m.key}" for m in machines
    }
    definitions = {arns[m.key]: m.definition(arns) for m in machines}
    for definition in definitions.values():
        usage = asl.check_limits(definition, "p")
        assert usage.payload_bytes <= asl.MAX_PAYLOAD_BYTES
        assert Linter.validate(definition) == []
    run = simulate.exact(definitions[arns[""]], definitions)
    assert sorted(n for n, _ in run.jobs.values() if n) == sorted(g.node_names)
    assert simulate.node_ancestors(run) == {n: set(ps) for n, ps in g.parents.items()}


def test_exact_mode_describes_every_node_job_to_name_a_failure():
    g = layered(60)
    definition = build(g, "exact")
    finders = [s for _, s in asl.iter_states(definition) if s.get("Resource") == asl.DESCRIBE_JOBS]
    described = [
        key
        for state in finders
        for key in re.findall(r"\$states\.input\.jobs\.(\w+)\.JobId", state["Arguments"]["Jobs"])
    ]
    submitted = [
        s["ResultPath"].removeprefix("$.jobs.")
        for s in tasks(definition)
        if (s.get("ResultPath") or "").startswith("$.jobs.") and simulate.task_nodes(s)
    ]
    assert sorted(described) == sorted(submitted) and len(submitted) == 60
    assert all(len(re.findall(r"JobId", s["Arguments"]["Jobs"])) <= 16 for s in finders)
    (wait,) = [s for s in tasks(definition) if s["Resource"] == asl.SUBMIT_JOB_SYNC]
    assert wait["Catch"][0]["Next"] == "FindFailedNode-1"
    # Only on the failure path: the success path's history estimate leaves them out.
    assert asl.limits(definition).history_events < 5 * (60 + 4) + 20
