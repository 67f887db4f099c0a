"""What the agent must do: desired units + observed units -> an ordered list of actions. Pure.

The agent writes every unit it manages with a first line ``# X-Fusion-Hash: <sha256 of the
rendered text>``. On the next pass (or after an agent restart) it reads that line back from the
file on disk: a unit whose hash equals the hash of what it would render now is *right* and is
never touched (no write, no restart), which is how restarting the agent restarts no container.

The plan, in this order:

1. ``stop`` the units that are no longer wanted (the driver stops them in one systemd job set:
   systemd stops dependents first and the rest in parallel);
2. ``write`` new and changed unit files, ``remove`` the files of unwanted units;
3. one ``daemon-reload`` if any file changed;
4. ``start`` new units (and wanted units found ``inactive``), ``restart`` changed ones, both in
   dependency order. A running unit whose change is only in service discovery (``--add-host``
   arguments) and ``[Unit]`` dependencies is not restarted: its container's ``/etc/hosts`` is
   ``refresh``-ed in place and systemd applies the dependencies at the reload (the second stamped
   line, ``# X-Fusion-Restart-Hash:``, hashes the unit without those). So a dependency moving to
   another host never restarts every replica of its dependents at once; (a unit after every desired unit it names in ``After=``/``Requires=``/
   ``BindsTo=``/``Wants=``), so that e.g. a volume unit and a database start before the web
   service that depends on them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

HASH_HEADER = "# X-Fusion-Hash: "
RESTART_HEADER = "# X-Fusion-Restart-Hash: "
ADD_HOST = re.compile(r"--add-host=([^:\s]+):(\S+)")
ADD_HOST_ARG = re.compile(r"[ \t]+--add-host=\S+")  # with its separator: a removed one leaves no trace
DEPENDENCY_KEYS = ("After", "Requires", "BindsTo", "Wants", "Requisite")

ActionKind = Literal["stop", "write", "remove", "daemon-reload", "start", "restart", "refresh"]


@dataclass(frozen=True)
class DesiredUnit:
    """A unit the agent wants on the host: its file name, rendered text (without the hash line)
    and the other units it is ordered after."""

    name: str
    text: str
    after: frozenset[str] = field(default_factory=frozenset)

    @property
    def hash(self) -> str:
        return unit_hash(self.text)

    @property
    def restart_hash(self) -> str:
        return unit_hash(restart_relevant(self.text))

    @property
    def file_text(self) -> str:
        """What goes on disk: the hash lines, then the rendered unit."""
        return stamp(self.text)


@dataclass(frozen=True)
class ObservedUnit:
    """A Fusion-managed unit found on the host: the hash in its file (None: no hash line) and its
    systemd ActiveState."""

    name: str
    hash: str | None
    state: str = "unknown"
    restart_hash: str | None = None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    unit: str = ""
    text: str | None = None  # for "write": the whole file

    def __str__(self) -> str:
        return f"{self.kind} {self.unit}".strip()


def unit_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def restart_relevant(text: str) -> str:
    """The unit without what changes when dependencies move: ``--add-host`` arguments and the
    ``[Unit]`` dependency keys."""
    out, section = [], ""
    for line in ADD_HOST_ARG.sub("", text).splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
        elif section == "Unit" and stripped.split("=", 1)[0].strip() in DEPENDENCY_KEYS:
            continue
        out.append(line)
    return "\n".join(out)


def add_hosts(text: str) -> dict[str, str]:
    """The ``--add-host=NAME:ADDRESS`` arguments of a unit: name -> address."""
    return {m.group(1): m.group(2) for m in ADD_HOST.finditer(text)}


def stamp(text: str) -> str:
    return f"{HASH_HEADER}{unit_hash(text)}\n{RESTART_HEADER}{unit_hash(restart_relevant(text))}\n{text}"


def read_hash(file_text: str, header: str = HASH_HEADER) -> str | None:
    """A hash stamped into a unit file's first lines (None when it has none)."""
    for line in file_text.split("\n", 2)[:2]:
        if line.startswith(header):
            return line[len(header) :].strip() or None
    return None


def unit_dependencies(text: str) -> frozenset[str]:
    """Every unit named in the ``[Unit]`` section's ordering/requirement keys."""
    deps: set[str] = set()
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Unit" or "=" not in line or line.startswith(("#", ";")):
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key in DEPENDENCY_KEYS:
            deps.update(value.split())
    return frozenset(deps)


def desired_unit(name: str, text: str) -> DesiredUnit:
    return DesiredUnit(name=name, text=text, after=unit_dependencies(text))


def dependency_order(units: Mapping[str, DesiredUnit], names: Iterable[str]) -> list[str]:
    """``names`` sorted so that every unit comes after the units (among ``names``' dependencies
    that are desired) it depends on; ties by name; a cycle is broken by name order."""
    wanted = set(names)
    # Walk dependencies through the whole desired set, so that ordering holds through units that
    # need no action themselves.
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:  # a cycle: leave it to systemd
            return
        state[name] = 1
        unit = units.get(name)
        if unit is not None:
            for dep in sorted(unit.after):
                if dep in units:
                    visit(dep)
        state[name] = 2
        order.append(name)

    for name in sorted(wanted):
        visit(name)
    return [n for n in order if n in wanted]


def plan(desired: Mapping[str, DesiredUnit], observed: Mapping[str, ObservedUnit]) -> list[Action]:
    """The actions that turn ``observed`` into ``desired`` (see the module docstring)."""
    unwanted = sorted(set(observed) - set(desired))
    new = sorted(set(desired) - set(observed))
    changed = sorted(n for n in desired if n in observed and observed[n].hash != desired[n].hash)
    soft = {n for n in changed if observed[n].state == "active" and observed[n].restart_hash is not None
            and observed[n].restart_hash == desired[n].restart_hash}
    idle = sorted(
        n for n in desired if n in observed and observed[n].hash == desired[n].hash and observed[n].state == "inactive"
    )

    actions: list[Action] = []
    # Stop dependents before what they depend on: reverse of the order the observed units would
    # start in, as far as the desired set tells (unwanted units are not desired, so: by name).
    for name in reversed(unwanted):
        if observed[name].state not in ("inactive",):
            actions.append(Action("stop", name))
    for name in sorted(new + changed):
        actions.append(Action("write", name, desired[name].file_text))
    for name in unwanted:
        actions.append(Action("remove", name))
    if new or changed or unwanted:
        actions.append(Action("daemon-reload"))
    to_start = set(new) | set(idle)
    for name in dependency_order(desired, to_start | set(changed)):
        if name in soft:
            actions.append(Action("refresh", name, desired[name].text))
        else:
            actions.append(Action("start" if name in to_start else "restart", name))
    return actions
