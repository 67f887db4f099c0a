"""The rolling-upgrade state machine (pure: no clock, no I/O).

A rollout moves every host of a cluster to one OS tree (``version``/``target`` checksum). Its whole
state is a :class:`RolloutState` value (JSON, kept in etcd under ``rollouts/<id>``). The imperative
shell loops: read :class:`Observations` from etcd, call :func:`step` with the current time, persist
the new state, carry out the returned :class:`Action` values, and report their outcome in the next
observations. Because the state is persisted before acting and every action is idempotent, an
orchestrator killed at any moment resumes where it was.

Per host::

    waiting -> draining -> (staging) -> rebooting -> verifying -> done
                  |           |              \\______________/
                  v           v                     | deadline passed
               failed      (abort/halt: back to waiting)     v
                                               rolling-back -> rolled-back   (or failed)

- waiting: ``Prefetch`` the target while it is not in the host's repo (all hosts in parallel);
  ``TakeSlot`` when it may start (running, window open, fewer than ``max_unavailable``
  hosts in flight, canary gate passed); once the slot is held: ``Cordon`` + ``Stage`` + ``Drain``
  (the target becomes the next boot's default while the drain runs: staging changes nothing that
  runs, and the host's agent keeps the staged deployment's Fusion units in step with the drain).
- draining: once the drain completed: ``Reboot`` if the target is staged (the boot deadline
  starts), else on to staging. A drain that does not finish in ``drain_timeout`` fails the host:
  ``Unstage`` + ``Uncordon`` + ``ReleaseSlot`` (nothing of it ran on the target).
- staging: once the target is staged: ``Reboot``; the boot deadline starts.
- rebooting: once the host is registered again with the target booted: ``Verify``, the verify
  deadline starts. Deadline passed: ``Rollback``.
- verifying: once healthy on the target: ``Uncordon`` + ``ReleaseSlot`` -> done. Deadline: ``Rollback``.
- rolling-back: once back on the previous tree (or anything but the target) and healthy:
  ``Uncordon`` + ``ReleaseSlot`` -> rolled-back. Past its deadline the host is failed and stays
  cordoned (a person must look), but the slot is released.

Every rolled-back host counts one failure and records the version as failed on that host (not tried
there again unless ``force``). At ``max_failures`` the rollout halts: no host starts, hosts in
draining/staging go back to waiting (``Unstage``, ``Uncordon``, ``ReleaseSlot``) and hosts already
rebooting finish (done or rolled back). ``pause`` stops new hosts only; ``abort`` is like halt but by
a person; a closed window stops new hosts only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.upgrade import window as windows
from specs.errors import FusionError

HostPhase = Literal[
    "waiting", "draining", "staging", "rebooting", "verifying", "rolling-back", "done", "failed", "rolled-back"
]
RolloutPhase = Literal["running", "paused", "aborted", "halted", "done"]

TERMINAL: frozenset[str] = frozenset({"done", "failed", "rolled-back"})
IN_FLIGHT: frozenset[str] = frozenset({"draining", "staging", "rebooting", "verifying", "rolling-back"})
HOST_EDGES: dict[str, frozenset[str]] = {
    "waiting": frozenset({"draining", "done", "failed"}),
    "draining": frozenset({"staging", "rebooting", "failed", "waiting"}),
    "staging": frozenset({"rebooting", "waiting"}),
    "rebooting": frozenset({"verifying", "rolling-back"}),
    "verifying": frozenset({"done", "rolling-back"}),
    "rolling-back": frozenset({"rolled-back", "failed"}),
    "done": frozenset(),
    "failed": frozenset(),
    "rolled-back": frozenset(),
}
ROLLOUT_EDGES: dict[str, frozenset[str]] = {
    "running": frozenset({"paused", "aborted", "halted", "done"}),
    "paused": frozenset({"running", "aborted"}),
    "halted": frozenset({"aborted"}),
    "aborted": frozenset(),
    "done": frozenset(),
}


class IllegalTransition(FusionError):
    """A state change the machine does not allow (a bug, or a command at the wrong time)."""


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostProgress(_Value):
    name: str
    state: HostPhase = "waiting"
    deadline: float | None = None  # when the current state times out (seconds since the epoch)
    previous: str | None = None  # the checksum booted before the upgrade (what a rollback returns to)
    message: str = ""
    since: float = 0.0  # when the host entered its state


class RolloutState(_Value):
    id: str
    version: str
    target: str  # the target tree's commit checksum
    max_unavailable: int = Field(default=1, ge=1)
    canary: int = Field(default=0, ge=0)
    auto_promote: bool = False
    approved: bool = False  # a person approved going on after the canaries
    max_failures: int = Field(default=1, ge=1)
    force: bool = False
    window: str | None = None  # window text (see orchestrator.upgrade.window)
    drain_timeout: float = 600.0
    boot_timeout: float = 600.0
    verify_timeout: float = 300.0
    rollback_timeout: float = 600.0
    phase: RolloutPhase = "running"
    hosts: tuple[HostProgress, ...] = ()
    failures: int = 0
    failed_versions: dict[str, tuple[str, ...]] = {}  # host -> versions that failed there
    created_at: float = 0.0
    message: str = ""

    def host(self, name: str) -> HostProgress:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> RolloutState:
        return cls.model_validate_json(data)

    @property
    def awaiting_approval(self) -> bool:
        if self.canary == 0 or self.approved or self.auto_promote:
            return False
        canaries = self.hosts[: self.canary]
        return all(h.state in TERMINAL for h in canaries) and any(h.state not in TERMINAL for h in self.hosts)


class HostObservation(_Value):
    """What etcd says about one host now (its registration; absent = not registered / rebooting)."""

    registered: bool = True
    booted: str | None = None
    staged: str | None = None
    healthy: bool = False  # the host's health checks pass (agent report)
    fetched: bool | None = None  # the target commit is already in the host's repo (None: not reported)


class Observations(_Value):
    hosts: dict[str, HostObservation] = {}
    drained: frozenset[str] = frozenset()  # hosts whose drain has completed
    slots: frozenset[str] = frozenset()  # hosts for which this rollout holds a reboot slot


@dataclass(frozen=True)
class Prefetch:
    """Download the target into the host's repo (no effect on what runs); every waiting host does it
    in parallel, even outside the window."""

    host: str
    checksum: str


@dataclass(frozen=True)
class TakeSlot:
    host: str


@dataclass(frozen=True)
class ReleaseSlot:
    host: str


@dataclass(frozen=True)
class Cordon:
    host: str


@dataclass(frozen=True)
class Uncordon:
    host: str


@dataclass(frozen=True)
class Drain:
    host: str


@dataclass(frozen=True)
class Stage:
    host: str
    checksum: str


@dataclass(frozen=True)
class Unstage:
    host: str


@dataclass(frozen=True)
class Reboot:
    host: str


@dataclass(frozen=True)
class Verify:
    host: str


@dataclass(frozen=True)
class Rollback:
    host: str
    checksum: str | None  # the previous deployment (None: whatever the host's rollback deployment is)


Action = Prefetch | TakeSlot | ReleaseSlot | Cordon | Uncordon | Drain | Stage | Unstage | Reboot | Verify | Rollback


# --- construction and commands ------------------------------------------------------------------


def new_rollout(
    rollout_id: str,
    version: str,
    target: str,
    hosts: list[str],
    now: float,
    *,
    failed_versions: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    **options: object,
) -> RolloutState:
    """A rollout over ``hosts`` (in that order: the first ``canary`` hosts are the canaries). Hosts
    where ``version`` failed before start as failed unless ``force``."""
    failed = {host: tuple(versions) for host, versions in (failed_versions or {}).items()}
    progress = []
    for name in hosts:
        if version in failed.get(name, ()) and not force:
            progress.append(HostProgress(name=name, state="failed", since=now,
                                         message=f"version {version} failed here before (use --force to retry)"))
        else:
            progress.append(HostProgress(name=name, since=now))
    if options.get("window") is not None:
        windows.parse(str(options["window"]))  # InputError now rather than later
    return RolloutState.model_validate(
        {"id": rollout_id, "version": version, "target": target, "hosts": tuple(progress), "created_at": now,
         "failed_versions": failed, "force": force, **options}
    )


def _phase(state: RolloutState, to: RolloutPhase, message: str = "") -> RolloutState:
    if to not in ROLLOUT_EDGES[state.phase]:
        raise IllegalTransition(f"rollout {state.id} is {state.phase}; cannot go to {to}")
    return state.model_copy(update={"phase": to, "message": message or state.message})


def pause(state: RolloutState) -> RolloutState:
    return _phase(state, "paused", "paused")


def resume(state: RolloutState) -> RolloutState:
    return _phase(state, "running", "resumed")


def abort(state: RolloutState) -> RolloutState:
    return _phase(state, "aborted", "aborted")


def approve(state: RolloutState) -> RolloutState:
    if state.canary == 0:
        raise IllegalTransition(f"rollout {state.id} has no canary stage to approve")
    if state.phase not in ("running", "paused"):
        raise IllegalTransition(f"rollout {state.id} is {state.phase}; nothing to approve")
    return state.model_copy(update={"approved": True})


def _move(h: HostProgress, to: HostPhase, now: float, deadline: float | None = None, message: str = "") -> HostProgress:
    if to not in HOST_EDGES[h.state]:
        raise IllegalTransition(f"host {h.name} is {h.state}; cannot go to {to}")
    return h.model_copy(update={"state": to, "since": now, "deadline": deadline, "message": message})


# --- the step -----------------------------------------------------------------------------------


def _window_open(state: RolloutState, now: float) -> bool:
    if state.window is None:
        return True
    return windows.allows(windows.parse(state.window), datetime.fromtimestamp(now, UTC))


def _may_start(state: RolloutState, index: int, now: float) -> bool:
    if state.phase != "running" or not _window_open(state, now):
        return False
    if state.canary and index >= state.canary:
        # after the canaries: only once every canary is finished and a person approved (or auto-promote)
        promoted = state.approved or state.auto_promote
        return promoted and all(h.state in TERMINAL for h in state.hosts[: state.canary])
    return True


def step(state: RolloutState, observed: Observations, now: float) -> tuple[RolloutState, list[Action]]:
    """One decision: the next state and the actions that bring the world towards it."""
    actions: list[Action] = []
    hosts = list(state.hosts)
    failures = state.failures
    failed_versions = dict(state.failed_versions)
    stopping = state.phase in ("aborted", "halted")

    # 1. hosts in flight move on what was observed
    for i, h in enumerate(hosts):
        obs = observed.hosts.get(h.name, HostObservation(registered=False))
        expired = h.deadline is not None and now >= h.deadline
        if h.state == "waiting" and not stopping and obs.registered and obs.healthy and obs.booted == state.target:
            hosts[i] = _move(h, "done", now, message=f"already on {state.version}")  # nothing to drain or reboot
            if h.name in observed.slots:
                actions.append(ReleaseSlot(h.name))
        elif h.state == "waiting" and h.name in observed.slots:
            if _may_start(state, i, now) and _in_flight(hosts) < state.max_unavailable:
                hosts[i] = _move(h, "draining", now, now + state.drain_timeout, "draining").model_copy(
                    update={"previous": obs.booted})
                actions += [Cordon(h.name), Stage(h.name, state.target), Drain(h.name)]  # the shell drains in place
            else:
                actions.append(ReleaseSlot(h.name))
        elif h.state == "draining":
            if stopping:
                hosts[i] = _move(h, "waiting", now, message=f"rollout {state.phase}")
                actions += [Unstage(h.name), Uncordon(h.name), ReleaseSlot(h.name)]
            elif h.name in observed.drained and obs.staged == state.target:
                hosts[i] = _move(h, "rebooting", now, now + state.boot_timeout, "rebooting")
                actions.append(Reboot(h.name))
            elif h.name in observed.drained:
                hosts[i] = _move(h, "staging", now, message="staging the target")
                actions.append(Stage(h.name, state.target))
            elif expired:
                hosts[i] = _move(h, "failed", now, message="drain did not finish in time; host left as it was")
                failures += 1
                actions += [Unstage(h.name), Uncordon(h.name), ReleaseSlot(h.name)]
            else:  # idempotent: the shell keeps one drain running and writes a request once
                actions += [Stage(h.name, state.target), Drain(h.name)]
        elif h.state == "staging":
            if stopping:
                hosts[i] = _move(h, "waiting", now, message=f"rollout {state.phase}")
                actions += [Unstage(h.name), Uncordon(h.name), ReleaseSlot(h.name)]
            elif obs.staged == state.target or obs.booted == state.target:
                hosts[i] = _move(h, "rebooting", now, now + state.boot_timeout, "rebooting")
                actions.append(Reboot(h.name))
            else:
                actions.append(Stage(h.name, state.target))
        elif h.state == "rebooting":
            if obs.registered and obs.booted == state.target:
                hosts[i] = _move(h, "verifying", now, now + state.verify_timeout, "verifying health")
                actions.append(Verify(h.name))
            elif expired:
                hosts[i] = _move(h, "rolling-back", now, now + state.rollback_timeout,
                                 f"did not boot {state.version} in time; rolling back")
                actions.append(Rollback(h.name, h.previous))
            else:
                actions.append(Reboot(h.name))  # idempotent: the host reboots once per request
        elif h.state == "verifying":
            if obs.registered and obs.booted == state.target and obs.healthy:
                hosts[i] = _move(h, "done", now, message=f"on {state.version}")
                actions += [Uncordon(h.name), ReleaseSlot(h.name)]
            elif expired or (obs.registered and obs.booted not in (None, state.target)):
                hosts[i] = _move(h, "rolling-back", now, now + state.rollback_timeout,
                                 f"not healthy on {state.version} in time; rolling back")
                actions.append(Rollback(h.name, h.previous))
        elif h.state == "rolling-back":
            if obs.registered and obs.booted not in (None, state.target) and obs.healthy:
                hosts[i] = _move(h, "rolled-back", now, message=f"{state.version} failed; rolled back")
                actions += [Uncordon(h.name), ReleaseSlot(h.name)]
                failures += 1
                failed_versions[h.name] = (*failed_versions.get(h.name, ()), state.version)
            elif expired:
                hosts[i] = _move(h, "failed", now, message="did not come back from the rollback; left cordoned")
                actions.append(ReleaseSlot(h.name))
                failures += 1
                failed_versions[h.name] = (*failed_versions.get(h.name, ()), state.version)
            else:
                actions.append(Rollback(h.name, h.previous))

    new = state.model_copy(update={"hosts": tuple(hosts), "failures": failures, "failed_versions": failed_versions})

    # 2. halt at max_failures: the hosts still draining or staging go back to waiting (next step)
    if new.phase == "running" and failures >= new.max_failures:
        new = _phase(new, "halted", f"halted after {failures} failure(s)")
        return new, actions

    # 3. start new hosts (take slots) up to max_unavailable
    free = new.max_unavailable - _in_flight(list(new.hosts))
    for i, h in enumerate(new.hosts):
        if free <= 0:
            break
        if h.state == "waiting" and h.name not in observed.slots and _may_start(new, i, now):
            if not observed.hosts.get(h.name, HostObservation(registered=False)).registered:
                continue  # a host that is down now is tried later
            actions.append(TakeSlot(h.name))
            free -= 1

    # 4. waiting hosts pre-download the target
    if new.phase in ("running", "paused"):
        for h in new.hosts:
            if h.state == "waiting" and observed.hosts.get(h.name, HostObservation(registered=False)).fetched is False:
                actions.append(Prefetch(h.name, new.target))

    # 5. the end
    if new.phase == "running" and all(h.state in TERMINAL for h in new.hosts):
        new = _phase(new, "done", "every host finished")
    return new, actions


def _in_flight(hosts: list[HostProgress]) -> int:
    return sum(1 for h in hosts if h.state in IN_FLIGHT)
