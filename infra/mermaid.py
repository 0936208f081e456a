"""Mermaid flowchart of an ASL definition, for code review.

GitHub renders ``.mmd`` files and Mermaid blocks, so the state machine a pull
request would deploy can be looked at instead of read as JSON. Tasks show
the Kedro nodes they run; ``Parallel`` states become subgraphs with a fork
and a join; per-node ``Fail`` states reached only through ``Catch`` are left
out to keep large pipelines legible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class _Chart:
    def __init__(self) -> None:
        self.lines: list[str] = ["flowchart TD"]
        self.count = 0

    def new_id(self) -> str:
        self.count += 1
        return f"s{self.count}"

    def machine(self, machine: Mapping[str, Any], depth: int) -> tuple[str, list[str]]:
        """Draw one (sub)machine; return its entry node and its exit nodes."""
        states: Mapping[str, Any] = machine["States"]
        caught = {c["Next"] for s in states.values() for c in s.get("Catch", ())}
        ids: dict[str, tuple[str, str]] = {}  # state -> (entry id, exit id)
        exits: list[str] = []
        pad = "  " * depth
        for name, state in states.items():
            if state["Type"] == "Fail" and name in caught:
                continue
            if state["Type"] == "Parallel":
                ids[name] = self._parallel(name, state, depth)
            else:
                node = self.new_id()
                self.lines.append(f"{pad}{node}{_shape(state['Type'], _label(name, state))}")
                ids[name] = (node, node)
        for name, state in states.items():
            if name not in ids:
                continue
            exit_id = ids[name][1]
            for label, target in _successors(state):
                if target in ids:
                    arrow = f"-->|{label}|" if label else "-->"
                    self.lines.append(f"{pad}{exit_id} {arrow} {ids[target][0]}")
            if state.get("End"):
                exits.append(exit_id)
        return ids[machine["StartAt"]][0], exits

    def _parallel(self, name: str, state: Mapping[str, Any], depth: int) -> tuple[str, str]:
        pad = "  " * depth
        fork, join = self.new_id(), self.new_id()
        self.lines.append(f'{pad}subgraph {self.new_id()}["{_escape(name)}"]')
        self.lines.append(f"{pad}  {fork}(( ))")
        for branch in state["Branches"]:
            entry, branch_exits = self.machine(branch, depth + 1)
            self.lines.append(f"{pad}  {fork} --> {entry}")
            self.lines.extend(f"{pad}  {e} --> {join}" for e in branch_exits)
        self.lines.append(f"{pad}  {join}(( ))")
        self.lines.append(f"{pad}end")
        return fork, join


def _successors(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [("", state["Next"])] if "Next" in state else []
    found += [("", c["Next"]) for c in state.get("Choices", ())]
    if "Default" in state:
        found.append(("default", state["Default"]))
    return found


def _label(name: str, state: Mapping[str, Any]) -> str:
    command = state.get("Parameters", {}).get("ContainerOverrides", {}).get("Command", [])
    if "--nodes" in command:
        nodes = command[command.index("--nodes") + 1].split(",")
        if nodes != [name]:
            return f"{name}<br/>{'<br/>'.join(nodes)}"
    return name


def _shape(kind: str, label: str) -> str:
    text = _escape(label)
    return {
        "Task": f'["{text}"]',
        "Choice": f'{{"{text}"}}',
        "Fail": f'[["{text}"]]',
        "Succeed": f'(["{text}"])',
    }.get(kind, f'("{text}")')


def _escape(text: str) -> str:
    return text.replace('"', "#quot;")


def flowchart(definition: Mapping[str, Any]) -> str:
    """The definition as a Mermaid ``flowchart TD``."""
    chart = _Chart()
    chart.machine(definition, 1)
    return "\n".join(chart.lines) + "\n"
