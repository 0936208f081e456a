"""Resource names AWS accepts, whatever the stack and the pipelines are called.

Pulumi auto-names a resource with its logical name, ``-`` and 7 random hex
characters, and pulumi-aws checks the result against the limits it knows
for a few types only (IAM roles, EventBridge rules, S3 buckets): a state
machine or an EventBridge target named after a long pipeline would be
refused by AWS half-way through ``pulumi up``. Logical names built here
are valid by construction: a name that fits is kept as it is (so existing
stacks keep their resources), a longer one is cut and given a stable hash
of the whole, so two long names that share a beginning stay apart and a
name never changes between previews.

Pure: the Pulumi components call these when they name what they create.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

PREFIX = "kedro-batch-"
# The stack's part of every name: S3 bucket names (63) are the tightest.
STACK_PART = 24
# Pulumi's auto-name suffix: "-" and 7 random hex characters.
AUTONAME_SUFFIX = 8
# Longest slug of a pipeline name in logical names (kept for stable names).
PIPELINE_PART = 40
HASH = 8

# AWS's limits on the physical names of auto-named resources whose logical
# names can grow with a pipeline name (the API references' length constraints).
STATE_MACHINE = 80  # states:CreateStateMachine name
EVENT_RULE = 64  # events:PutRule Name
EVENT_TARGET = 64  # events:PutTargets Target Id (pulumi-aws auto-names targetId)
SCHEDULE = 64  # scheduler:CreateSchedule Name
IAM_ROLE = 64  # iam:CreateRole RoleName
BUCKET = 63  # S3 bucket naming rules


def deployment_name(stack: str) -> str:
    """The prefix of every resource of a stack: ``kedro-batch-<stack>``, lower case
    with hyphens (S3 and ECR want it) and the stack's part cut to :data:`STACK_PART`
    characters (stacks are told apart by their own state and the auto-names'
    random suffixes, not by these names)."""
    return PREFIX + re.sub(r"[^a-z0-9-]", "-", stack.lower())[:STACK_PART]


def fitted(logical: str, limit: int) -> str:
    """``logical`` if Pulumi's auto-name of it fits ``limit`` characters, else its
    beginning, ``-`` and a hash of the whole, so that the auto-name fits."""
    room = limit - AUTONAME_SUFFIX
    if len(logical) <= room:
        return logical
    digest = hashlib.sha1(logical.encode()).hexdigest()[:HASH]
    return f"{logical[: room - HASH - 1].rstrip('-_.')}-{digest}"


def pipeline_slugs(pipelines: Iterable[str]) -> dict[str, str]:
    """Pipeline name -> its part in resource names: ``[A-Za-z0-9_-]``, at most
    :data:`PIPELINE_PART` characters, one per pipeline.

    Where two pipelines would get the same slug (``a.b`` and ``a-b``, or two
    names that share their first 40 characters), each whose slug is not its
    own name gets a hash of its name instead of its last characters.
    """
    names = sorted(set(pipelines))
    plain = {p: re.sub(r"[^A-Za-z0-9_-]", "-", p)[:PIPELINE_PART] for p in names}
    taken: dict[str, int] = {}
    for slug in plain.values():
        taken[slug] = taken.get(slug, 0) + 1
    slugs = {}
    for pipeline, slug in plain.items():
        if taken[slug] > 1 and slug != pipeline:
            digest = hashlib.sha1(pipeline.encode()).hexdigest()[:HASH]
            slug = f"{slug[: PIPELINE_PART - HASH - 1]}-{digest}"
        slugs[pipeline] = slug
    return slugs
