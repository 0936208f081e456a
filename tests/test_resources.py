"""Per-node resources: precedence, merging, Fargate sizes, and one clear error each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra import asl
from infra.config import Settings, parse
from infra.errors import UserError
from infra.graph import NodeInfo, PipelineGraph, group_tasks, one_task_per_node
from infra.plan import PipelinePlan
from infra.resources import (
    BUILTIN,
    FARGATE_SIZES,
    JobClass,
    Resources,
    normalise,
    plan_resources,
)

QUEUE, GPU_QUEUE = "queue-arn", "gpu-queue-arn"

# A small pipeline: prep -> fit -> report, with tags like the example's.
NODES = {"ns.prep": ["small"], "ns.fit": ["large"], "ns.report": ["small", "large"]}


def pipeline(groups: Sequence[Sequence[str]] | None = None) -> dict[str, PipelinePlan]:
    names = list(NODES)
    graph = PipelineGraph(
        name="p",
        nodes=tuple(NodeInfo(name=n, tags=frozenset(NODES[n])) for n in names),
        parents={n: frozenset(names[i - 1 : i]) for i, n in enumerate(names)},
    )
    tasks = group_tasks(graph, groups) if groups else one_task_per_node(graph)
    return {"p": PipelinePlan("p", graph, tasks, "structured", {})}


def settings(**raw: Any) -> Settings:
    return parse(raw)


def resolve(groups: Sequence[Sequence[str]] | None = None, **raw: Any) -> Mapping[str, Resources]:
    return plan_resources(settings(**raw), pipeline(groups)).tasks["p"]


def test_without_profiles_every_task_gets_the_builtin_default():
    plan = plan_resources(settings(), pipeline())
    assert set(plan.tasks["p"].values()) == {BUILTIN}
    assert plan.job_classes == (JobClass(gpu=False, attempts=3),)
    specs = plan.job_specs("p", queue=lambda c: None, definition=lambda c: None)
    assert all(s.resource_requirements == {} and s.timeout is None for s in specs.values())


def test_the_default_profile_fills_in_what_other_profiles_leave_out():
    tasks = resolve(
        profiles={"default": {"memory": 4096, "timeout": 600}, "large": {"vcpu": 2}},
        tagProfiles={"large": "large"},
    )
    assert tasks["ns.prep"] == Resources(1.0, 4096, 0, 600, 2)
    assert tasks["ns.fit"] == Resources(2.0, 4096, 0, 600, 2)


def test_node_profile_wins_over_tag_profiles():
    tasks = resolve(
        profiles={"large": {"vcpu": 4, "memory": 8192}, "tiny": {"vcpu": 0.25, "memory": 512}},
        tagProfiles={"large": "large"},
        nodeProfiles={"ns.fit": "tiny"},
    )
    assert (tasks["ns.fit"].vcpu, tasks["ns.fit"].memory) == (0.25, 512)
    assert tasks["ns.report"].vcpu == 4


def test_two_tag_profiles_take_the_larger_of_each_setting_rounded_to_a_fargate_size():
    tasks = resolve(
        profiles={
            "large": {"vcpu": 8, "memory": 16384, "timeout": 600},
            "small": {"vcpu": 4, "memory": 17408, "retries": 5},
        },
        tagProfiles={"large": "large", "small": "small"},
    )
    # max = 8 vCPU / 17408 MiB; 8 vCPU runs with 16384 + n * 4096, so 20480.
    assert tasks["ns.report"] == Resources(8.0, 20480, 0, 7200, 5)


def test_a_task_of_several_nodes_gets_the_max_of_each_resource_and_their_summed_timeouts():
    tasks = resolve(
        groups=[["ns.prep", "ns.fit"], ["ns.report"]],
        profiles={"large": {"vcpu": 2, "memory": 4096}, "small": {"timeout": 60, "retries": 0}},
        tagProfiles={"large": "large", "small": "small"},
        nodeProfiles={"ns.fit": "large"},
    )
    fused = tasks["ns.prep..ns.fit"]  # named first..last
    # The nodes run one after another: each keeps its own time allowance (60 s + 2 h).
    assert fused == Resources(2.0, 4096, 0, 60 + 7200, 2)


def test_ec2_rounds_merged_vcpus_up_to_whole_ones():
    assert normalise(Resources(0.5, 1000, 0, 60, 0), "EC2").vcpu == 1
    assert normalise(Resources(2.0, 1000, 1, 60, 0), "FARGATE") == Resources(2.0, 1000, 1, 60, 0)


@given(
    st.sampled_from([(v, m) for v, ms in FARGATE_SIZES.items() for m in ms]),
    st.sampled_from([(v, m) for v, ms in FARGATE_SIZES.items() for m in ms]),
)
def test_merging_valid_fargate_sizes_always_gives_the_smallest_valid_size_covering_both(a, b):
    merged = normalise(
        Resources(a[0], a[1], 0, 60, 0).union(Resources(b[0], b[1], 0, 60, 0)), "FARGATE"
    )
    assert merged.memory in FARGATE_SIZES[merged.vcpu]
    assert merged.vcpu >= max(a[0], b[0]) and merged.memory >= max(a[1], b[1])
    smaller = [
        (v, m)
        for v, ms in FARGATE_SIZES.items()
        for m in ms
        if v >= max(a[0], b[0]) and m >= max(a[1], b[1])
    ]
    assert (merged.vcpu, merged.memory) == min(smaller)


def test_fargate_sizes_are_the_documented_ones():
    assert FARGATE_SIZES[0.25] == (512, 1024, 2048)
    for vcpu, low, high, step in [
        (0.5, 1024, 4096, 1024),
        (1, 2048, 8192, 1024),
        (2, 4096, 16384, 1024),
        (4, 8192, 30720, 1024),
        (8, 16384, 61440, 4096),
        (16, 32768, 122880, 8192),
    ]:
        assert FARGATE_SIZES[vcpu] == tuple(range(low, high + 1, step))


def test_gpu_profiles_get_the_gpu_queue_and_job_definition_even_with_fargate_compute():
    plan = plan_resources(
        settings(
            computeType="FARGATE_SPOT",
            profiles={"gpu": {"vcpu": 4, "memory": 16384, "gpu": 1}},
            nodeProfiles={"ns.fit": "gpu"},
        ),
        pipeline(),
    )
    gpu = JobClass(gpu=True, attempts=3)
    assert plan.needs_gpu and plan.job_classes == (JobClass(False, 3), gpu)
    specs = plan.job_specs(
        "p",
        queue=lambda c: GPU_QUEUE if c.gpu else None,
        definition=lambda c: "gpu-def" if c.gpu else None,
    )
    assert specs["ns.fit"].job_queue == GPU_QUEUE
    assert specs["ns.fit"].job_definition == "gpu-def"
    assert specs["ns.fit"].resource_requirements == {"VCPU": "4", "MEMORY": "16384", "GPU": "1"}
    assert specs["ns.prep"].job_queue is None and specs["ns.prep"].job_definition is None


def test_other_retries_get_their_own_job_definition_and_never_a_submit_job_override():
    plan = plan_resources(
        settings(profiles={"flaky": {"retries": 5}}, tagProfiles={"large": "flaky"}), pipeline()
    )
    assert plan.job_classes == (JobClass(False, 3), JobClass(False, 6))
    specs = plan.job_specs("p", queue=lambda c: None, definition=lambda c: f"def-{c.attempts}")
    assert specs["ns.fit"].job_definition == "def-6"
    # A RetryStrategy override would replace the definition's evaluateOnExit.
    definition = pipeline()["p"].definition("q", "d", jobs=specs)
    assert not any(
        "RetryStrategy" in state.get("Parameters", {}) for _, state in asl.iter_states(definition)
    )
    assert specs["ns.fit"].resource_requirements == {}


def test_ephemeral_storage_makes_a_job_class_and_a_node_gets_the_largest_it_selects():
    plan = plan_resources(
        settings(
            profiles={"big": {"ephemeralStorage": 100}, "mid": {"ephemeralStorage": 40}},
            tagProfiles={"large": "big", "small": "mid"},
        ),
        pipeline(),
    )
    # ns.report is tagged small and large: the larger disk.
    storage = {task: r.ephemeral_storage for task, r in plan.tasks["p"].items()}
    assert storage == {"ns.prep": 40, "ns.fit": 100, "ns.report": 100}
    assert plan.job_classes == (JobClass(False, 3), JobClass(False, 3, 40), JobClass(False, 3, 100))
    assert plan.base(JobClass(False, 3, 100)).ephemeral_storage == 100
    specs = plan.job_specs(
        "p", queue=lambda c: None, definition=lambda c: f"def-{c.ephemeral_storage}"
    )
    assert specs["ns.fit"].job_definition == "def-100"


def test_gpu_jobs_drop_a_fargate_default_disk_they_cannot_use():
    plan = plan_resources(
        settings(
            profiles={"default": {"ephemeralStorage": 60}, "gpu": {"vcpu": 4, "gpu": 1}},
            nodeProfiles={"ns.fit": "gpu"},
        ),
        pipeline(),
    )
    assert plan.tasks["p"]["ns.fit"].ephemeral_storage == 0
    assert plan.tasks["p"]["ns.prep"].ephemeral_storage == 60


def test_timeouts_are_overridden_only_where_they_differ():
    plan = plan_resources(
        settings(profiles={"large": {"timeout": 86400}}, tagProfiles={"large": "large"}),
        pipeline(),
    )
    specs = plan.job_specs("p", queue=lambda c: None, definition=lambda c: None)
    assert specs["ns.fit"].timeout == 86400
    assert specs["ns.prep"].timeout is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"profiles": {"large": {"vcpu": 3, "memory": 8192}}, "tagProfiles": {"large": "large"}},
            "invalid config kedro-batch:profiles: profile 'large' (node 'ns.fit', via tag "
            "'large'): Fargate does not support 3 vCPU; use 0.25, 0.5, 1, 2, 4, 8 or 16",
        ),
        (
            {"profiles": {"big": {"vcpu": 2, "memory": 2048}}, "nodeProfiles": {"ns.prep": "big"}},
            "profile 'big' (node 'ns.prep', via kedro-batch:nodeProfiles): Fargate does not run "
            "2 vCPU with 2048 MiB; it takes 4096-16384 MiB in steps of 1024",
        ),
        (
            {"profiles": {"tiny": {"vcpu": 0.25, "memory": 4096}}},
            "profile 'tiny': Fargate does not run 0.25 vCPU with 4096 MiB; it takes 512, 1024 "
            "or 2048 MiB",
        ),
        (
            {"profiles": {"huge": {"vcpu": 32, "memory": 65536}}, "maxVcpus": 64},
            "profile 'huge': Fargate runs at most 16 vCPU, not 32",
        ),
        (
            {"profiles": {"huge": {"vcpu": 16, "memory": 131072}}},
            "profile 'huge': Fargate runs at most 122880 MiB (120 GiB), not 131072",
        ),
        (
            {"profiles": {"default": {"vcpu": 8, "memory": 16384}}, "maxVcpus": 4},
            "profile 'default' (the default for every node): 8 vCPU is more than "
            "kedro-batch:maxVcpus (4), so its jobs could never start",
        ),
        (
            {"profiles": {"gpu": {"vcpu": 0.5, "gpu": 1}}},
            "profile 'gpu': GPU jobs run on EC2, which takes whole vCPUs, not 0.5",
        ),
        (
            {"computeType": "SPOT", "profiles": {"default": {"vcpu": 0.25, "memory": 512}}},
            "profile 'default' (the default for every node): EC2 takes whole vCPUs, not 0.25",
        ),
        (
            {"profiles": {"gpu": {"gpu": 1, "ephemeralStorage": 50}}},
            "profile 'gpu': ephemeralStorage sizes a Fargate task's disk, and GPU jobs run on EC2",
        ),
        (
            {"computeType": "EC2", "profiles": {"default": {"ephemeralStorage": 50}}},
            "profile 'default' (the default for every node): ephemeralStorage sizes a Fargate "
            "task's disk, and kedro-batch:computeType EC2, where the instance's volume",
        ),
        (
            {
                "profiles": {"large": {"vcpu": 2, "memory": 4096}},
                "nodeProfiles": {"ns.fitt": "large"},
            },
            "invalid config kedro-batch:nodeProfiles: node 'ns.fitt' is not in any deployed "
            "pipeline (p); did you mean 'ns.fit'?",
        ),
    ],
)
def test_bad_profiles_name_the_key_the_profile_and_the_fix(raw: dict[str, Any], message: str):
    with pytest.raises(UserError) as info:
        plan_resources(settings(**raw), pipeline())
    assert message in str(info.value)


def test_gpu_profiles_are_valid_on_any_compute_type_and_ec2_takes_any_memory():
    for compute in ("FARGATE", "FARGATE_SPOT", "SPOT", "EC2"):
        plan = plan_resources(
            settings(
                computeType=compute,
                profiles={"gpu": {"vcpu": 3, "memory": 3000, "gpu": 2}},
                tagProfiles={"large": "gpu"},
            ),
            pipeline(),
        )
        assert plan.tasks["p"]["ns.fit"].requirements() == {
            "VCPU": "3",
            "MEMORY": "3000",
            "GPU": "2",
        }
