"""``fusion drain HOST``: move every container off a host, replacements first.

Side effects: etcd reads and writes (cordon, placement decisions) and a watch on container reports,
through the store. The decisions themselves are pure (``deploy.drain_steps``).

For each app with containers on the host: (1) start each replica on another host (chosen by the
placement rules as if the host were gone) in one decision; (2) wait until every replacement is
running and healthy; (3) stop the replicas on the host in a second decision. No replica is down in
between, so a service never goes below its ``min_available``. If a replacement does not become
healthy in time, the replacements are removed again and the drain fails with the reason (the host
stays cordoned, its containers untouched). ``force`` stops what cannot be placed elsewhere or does
not become healthy, as ``kubectl drain --force`` would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.store import Store
from orchestrator.deploy import Step, drain_steps, step_decision
from orchestrator.ops import Clock, WaitState, read_view, wait_ready
from orchestrator.placement import PlacementError
from orchestrator.plan import Change, service_hashes
from specs.cluster import CordonRecord
from specs.errors import FusionError


class DrainError(FusionError):
    """A host could not be drained (what was started for it has been undone)."""


@dataclass
class DrainReport:
    host: str
    moved: list[str] = field(default_factory=list)  # "app/service/n h1 -> h2"
    stopped: list[str] = field(default_factory=list)  # stopped without a replacement (force)


def drained(store: Store, host: str) -> bool:
    return not store.placements(host=host)


def _commit(store: Store, app: str, step: Step, note: str, now: Clock) -> None:
    current, mod = store.current(app)
    if current is None:
        return  # removed meanwhile: nothing of it to move
    store.commit(step_decision(store.keys, app, step, current=current.bumped(note, now()), expected_mod=mod))


def drain(
    store: Store,
    host: str,
    *,
    timeout: float = 300.0,
    force: bool = False,
    by: str = "cli",
    reason: str = "drain",
    progress: Callable[[str], None] | None = None,
    now: Clock = time.time,
) -> DrainReport:
    """Cordon ``host`` and move its containers elsewhere (see the module doc). Idempotent: a drain
    that was interrupted is finished by running it again."""
    say = progress or (lambda _: None)
    if host not in store.cordons():
        store.set_cordon(host, CordonRecord(reason=reason, by=by, at=now()))
    report = DrainReport(host)
    view = read_view(store)
    on_host = sorted({r.app for r in view.placements if r.host == host})
    for name in on_host:
        app = view.apps.get(name)
        records = [r for r in view.placements if r.app == name and r.host == host]
        stop_all = Step((), tuple(Change((r.app, r.service, r.replica), None, host) for r in records), ())
        current, _ = store.current(name)
        if app is None or current is None:  # placements of an app that is not deployed any more
            for r in records:
                store.delete(store.keys.placement(host, r.app, r.service, r.replica))
            continue
        try:
            steps = drain_steps(view, app, current.revision, host)
        except PlacementError as e:
            if not force:
                raise DrainError(f"cannot drain {host}: {e}", hint="add hosts, or --force to stop them") from None
            _commit(store, name, stop_all, f"drain {host} (forced)", now)
            report.stopped += [f"{name}/{r.service}/{r.replica}" for r in records]
            continue
        if steps is None:
            continue
        start, stop = steps
        moves = [c for c in start.changes if c.host]
        say(f"{name}: starting " + ", ".join(f"{c} on {c.host}" for c in moves))
        _commit(store, name, start, f"drain {host}: start replacements", now)
        hashes = service_hashes(app)
        state = wait_ready(store, name, {c.slot: (c.host or "", hashes[c.slot[1]]) for c in moves},
                           timeout=timeout)
        if not state.done and not force:
            _undo(store, name, moves, now)
            raise DrainError(f"cannot drain {host}: {_why(state)}; the replacements were removed",
                             hint=f"`fusion ps {name}` shows each container; --force stops them anyway")
        _commit(store, name, stop, f"drain {host}: stop replaced containers", now)
        report.moved += [f"{c} {host} -> {c.host}" for c in moves]
        say(f"{name}: moved " + ", ".join(f"{c} -> {c.host}" for c in moves))
    return report


def _undo(store: Store, app: str, moves: list[Change], now: Clock) -> None:
    _commit(store, app, Step((), tuple(Change(c.slot, None, c.host) for c in moves), ()),
            "drain failed: replacements removed", now)


def _why(state: WaitState) -> str:
    bad = [s for s in sorted(state.targets) if s not in state.ready()]
    return "; ".join(state.why_not(s) for s in bad[:3]) or "timed out"
