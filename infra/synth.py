"""Run the Pulumi program offline, under Pulumi's mock runtime.

No cloud, no Pulumi CLI: the program in ``__main__.py`` runs exactly as under
``pulumi up`` (``preview=False`` so ``apply`` callbacks run), against
:class:`infra.mocks.SynthMocks`. What it registers becomes ``resources.json``
and each state machine's definition an ``.asl.json`` and a Mermaid diagram,
which is what a reviewer reads instead of a live ``pulumi preview``.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.components.orchestration import PART_TAG, PIPELINE_TAG
from infra.config import NAMESPACE, REPO_ROOT, Settings, check_region, parse
from infra.errors import UserError

STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"


@dataclass
class Synthesis:
    """What one offline run of the program registered and exported."""

    stack: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def definitions(self) -> dict[str, dict[str, Any]]:
        """Pipeline name -> the ASL definition of its own state machine."""
        return {
            pipeline: definition
            for (pipeline, part), definition in self.machines.items()
            if not part
        }

    @property
    def parts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(pipeline, part) -> definition of the child machines of split pipelines."""
        return {key: d for key, d in self.machines.items() if key[1]}

    @property
    def machine_arns(self) -> dict[str, dict[str, Any]]:
        """State machine ARN (as the mocks made it) -> definition."""
        return {
            r["arn"]: json.loads(r["inputs"]["definition"])
            for r in self.resources
            if r["type"] == STATE_MACHINE
        }

    @property
    def machines(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(pipeline, part) -> definition; part is ``""`` for a pipeline's own machine."""
        found = {}
        for r in self.resources:
            if r["type"] == STATE_MACHINE:
                tags = r["inputs"].get("tags") or {}
                key = (tags.get(PIPELINE_TAG, r["name"]), tags.get(PART_TAG, ""))
                found[key] = json.loads(r["inputs"]["definition"])
        return found


def stack_config(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The stack's config as the Pulumi engine hands it to a program.

    Keys are namespaced (a bare key belongs to ``kedro-batch:``) and every
    value is a string, lists and objects JSON-encoded. An override with an
    empty value removes the key, so its default applies.
    """
    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name.split(".")[1] for p in REPO_ROOT.glob("Pulumi.*.yaml"))
        raise UserError(
            f"no stack config {path.name}; use one of: {', '.join(stacks) or '(none)'} "
            f"or create it (pulumi stack init {stack})"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw = {_qualified(k): v for k, v in (data.get("config") or {}).items()}
    for key, value in (overrides or {}).items():
        raw[_qualified(key)] = value
        if value == "":
            del raw[_qualified(key)]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def stack_settings(stack: str, overrides: Mapping[str, str] | None = None) -> Settings:
    """The stack's validated ``kedro-batch:`` settings (what the program will read)."""
    config = stack_config(stack, overrides)
    check_region(config.get("aws:region"), config.get("aws:skipRegionValidation", False))
    return parse({k: v for k, v in config.items() if k.startswith(f"{NAMESPACE}:")})


def _qualified(key: str) -> str:
    return key if ":" in key else f"{NAMESPACE}:{key}"


def synthesize(
    stack: str = "dev", overrides: Mapping[str, str] | None = None, *, name: str | None = None
) -> Synthesis:
    """Run ``__main__.py`` under mocks with the stack's config (plus overrides);
    ``name``: the stack's name as the program sees it, if not ``stack``."""
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import set_all_config

    from infra.mocks import REGION, SynthMocks

    config = stack_config(stack, overrides)
    result = Synthesis(stack=stack)
    mocks = SynthMocks(config.get("aws:region", REGION))
    monitor = _recording_monitor(mocks, result)
    pulumi.runtime.set_mocks(
        mocks, project=NAMESPACE, stack=name or stack, preview=False, monitor=monitor
    )
    set_all_config(config)

    @pulumi_mocks.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        from pulumi.runtime.settings import get_root_resource

        runpy.run_path(str(REPO_ROOT / "__main__.py"), run_name="__main__")
        exports = getattr(get_root_resource(), "outputs", {})
        return pulumi.Output.from_input(exports).apply(
            lambda values: result.outputs.update(_plain(values))
        )

    try:
        program()
    except pulumi.RunError as exc:
        raise UserError(str(exc)) from None
    return result


def _recording_monitor(mocks: Any, result: Synthesis) -> Any:
    """A MockMonitor that records each registration's inputs, options and ARN."""
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class Monitor(MockMonitor):  # type: ignore[misc]
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                options = {
                    "retainOnDelete": bool(request.retainOnDelete),
                    "ignoreChanges": list(request.ignoreChanges),
                    "protect": bool(request.protect),
                    "parent": request.parent.rsplit("::", 1)[-1] if request.parent else None,
                    # What the engine waits for before creating it (depends_on
                    # and the resources its inputs come from), by name.
                    "dependsOn": sorted({urn.rsplit("::", 1)[-1] for urn in request.dependencies}),
                    # Names it had before, which Pulumi maps to it (no replacement).
                    "aliases": sorted(a.spec.name for a in request.aliases if a.spec.name),
                }
                outputs = rpc.deserialize_properties(response.object)
                result.resources.append(
                    {
                        "type": request.type,
                        "name": request.name,
                        "inputs": _plain(rpc.deserialize_properties(request.object)),
                        "options": options,
                        **({"arn": outputs["arn"]} if "arn" in outputs else {}),
                    }
                )
            return response

    return Monitor(mocks)


def _plain(value: Any) -> Any:
    """JSON-ready copy: unknowns and secrets as Pulumi would show them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


# What ``write`` puts in an output folder; ``clear`` removes exactly these.
ARTIFACTS = ("*.asl.json", "*.mmd", "resources.json", "outputs.json", "plan.json")


def clear(out: Path) -> None:
    """Remove a previous synth's artifacts from ``out`` (and nothing else: ``--out``
    may be a folder with other files), so a failed synth leaves no stale ones."""
    if out.is_dir():
        for pattern in ARTIFACTS:
            for path in out.glob(pattern):
                path.unlink()


def write(synthesis: Synthesis, out: Path) -> list[Path]:
    """Write ``<pipeline>.asl.json``, ``<pipeline>.mmd`` (and ``<pipeline>.<part>.*``
    for the child machines of a split pipeline) and ``resources.json``."""
    from infra.mermaid import flowchart

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (pipeline, part), definition in synthesis.machines.items():
        stem = f"{pipeline}.{part}" if part else pipeline
        asl_path = out / f"{stem}.asl.json"
        asl_path.write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
        mmd_path = out / f"{stem}.mmd"
        mmd_path.write_text(flowchart(definition), encoding="utf-8")
        written += [asl_path, mmd_path]
    resources_path = out / "resources.json"
    resources_path.write_text(json.dumps(synthesis.resources, indent=2) + "\n", encoding="utf-8")
    outputs_path = out / "outputs.json"
    outputs_path.write_text(json.dumps(synthesis.outputs, indent=2) + "\n", encoding="utf-8")
    return [*written, resources_path, outputs_path]
