"""The orchestrator's imperative shell: read a view through the store, decide (pure functions in
``deploy``/``plan``/``placement``), commit, and wait for the hosts' reports.

Side effects: etcd reads, writes and watches (through :class:`~common.store.Store` only) and
time (``now``/``sleep`` are parameters with real defaults, so tests can bound them). Nothing here
prints; progress goes to callbacks that the CLI renders. (Host loss: `reconcile`; logs: `logs`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from common.store import KV, Store, StoreError
from orchestrator.deploy import (
    AppPlan,
    ClusterView,
    deploy_steps,
    plan_app,
    remove_decision,
    step_decision,
)
from orchestrator.placement import Slot
from specs.app import App
from specs.cluster import (
    AppCurrent,
    ContainerStatus,
    CordonRecord,
    PlacementRecord,
    SpecRevision,
)
from specs.errors import FusionError, InputError

Clock = Callable[[], float]
Progress = Callable[["WaitState"], None]


class DeployError(FusionError):
    """A deploy did not reach a running and healthy app."""


class NotDeployed(InputError):
    pass


# --- reading --------------------------------------------------------------------------------------


def live_app(store: Store, name: str) -> tuple[App, AppCurrent, int]:
    current, mod = store.current(name)
    if current is None:
        raise NotDeployed(f"app {name!r} is not deployed", hint="see `fusion ps` for what runs")
    spec = store.spec(name, current.revision)
    if spec is None:
        raise StoreError(f"spec revision {current.revision} of {name!r} is missing from etcd")
    return App.model_validate(spec.app), current, mod


def read_view(
    store: Store, *, lost: frozenset[str] = frozenset(), assume_alive: frozenset[str] = frozenset()
) -> ClusterView:
    apps: dict[str, App] = {}
    for name in store.apps():
        try:
            apps[name] = live_app(store, name)[0]
        except (NotDeployed, ValidationError):
            continue  # removed meanwhile, or a spec this version cannot read: not counted
    return ClusterView(
        hosts=tuple(store.hosts()),
        cordons=frozenset(store.cordons()),
        placements=tuple(store.placements()),
        apps=apps,
        lost=lost,
        assume_alive=assume_alive,
    )


# --- waiting for the hosts --------------------------------------------------------------------------


@dataclass
class WaitState:
    targets: dict[Slot, tuple[str, str]]  # slot -> (host, service_hash) expected to be ready
    statuses: dict[tuple[str, Slot], ContainerStatus] = field(default_factory=dict)  # (host, slot)
    read_at: int = 0  # revision of the last full read: watch events up to it are already in
    gone: frozenset[tuple[str, Slot]] = frozenset()  # (host, slot) removed: its report goes once stopped

    def follow(self, placements: Iterable[PlacementRecord]) -> None:
        """Expect a target where it is placed now, with the same definition: the controller moves
        a replica whose host's registration expired (e.g. a host that went away during a deploy)."""
        where: dict[Slot, list[PlacementRecord]] = {}
        for p in placements:
            where.setdefault((p.app, p.service, p.replica), []).append(p)
        for slot, (p, *others) in where.items():  # two at once: a start-first move, still under way
            if slot in self.targets and not others and self.targets[slot][1] == p.service_hash:
                self.targets[slot] = (p.host, p.service_hash)

    def status(self, slot: Slot) -> ContainerStatus | None:
        host, _ = self.targets[slot]
        return self.statuses.get((host, slot))

    def ready(self) -> list[Slot]:
        out = []
        for slot, (_, h) in sorted(self.targets.items()):
            s = self.status(slot)
            if s is not None and s.service_hash == h and s.ready:
                out.append(slot)
        return out

    def failed(self) -> list[Slot]:
        out = []
        for slot, (_, h) in sorted(self.targets.items()):
            s = self.status(slot)
            if s is not None and s.service_hash == h and s.state == "failed":
                out.append(slot)
        return out

    def why_not(self, slot: Slot) -> str:
        host, h = self.targets[slot]
        app, service, n = slot
        s = self.status(slot)
        name = f"{app}/{service}/{n} on {host}"
        if s is None:
            return f"{name}: no report from the host yet"
        if s.service_hash != h:
            return f"{name}: the host still runs the previous definition ({s.state})"
        text = f"{name}: {s.state}" + (f"/{s.sub_state}" if s.sub_state else "")
        if s.health not in ("none", "healthy"):
            text += f", health {s.health}"
        return text + (f": {s.message}" if s.message else "")

    @property
    def done(self) -> bool:
        return len(self.ready()) == len(self.targets)

    def stopping(self) -> list[tuple[str, Slot]]:
        """Removed containers whose host still reports them (not stopped yet)."""
        return sorted(g for g in self.gone if g in self.statuses)


def wait_ready(
    store: Store,
    app: str,
    targets: Mapping[Slot, tuple[str, str]],
    *,
    timeout: float,
    progress: Progress | None = None,
    clock: Clock = time.monotonic,
    resync: float = 5.0,
    gone: Iterable[tuple[str, Slot]] = (),
    settle: float = 30.0,
) -> WaitState:
    """Watch the app's container reports until every target is ready, one has failed, or ``timeout``.
    Once the targets are ready, wait up to ``settle`` seconds more for the reports of the removed
    containers in ``gone`` to go (their hosts stopped them, and a routing-mesh proxy took their
    ports over): a deploy that returns has nothing half-stopped left. Only the targets decide
    ``done``."""
    state = WaitState(dict(targets), gone=frozenset(gone))
    kvs, revision = store.range(store.keys.status_prefix())
    state.read_at = revision
    for kv in kvs:
        _record(state, kv, app)
    if progress:
        progress(state)
    if (state.done and not state.stopping()) or state.failed():
        return state
    watch = store.watch(store.keys.status_prefix(), start_revision=revision + 1)
    deadline = clock() + timeout
    last_sync = clock()
    settled_by: float | None = None
    try:
        while clock() < min(deadline, settled_by or deadline):
            events = watch.drain(min(1.0, max(0.0, deadline - clock())))
            for e in events:
                if e.kv.mod_revision <= state.read_at:
                    continue  # already part of the last full read
                if e.type == "DELETE":
                    host, a, service, n = store.keys.parse_container_key(e.kv.key)
                    state.statuses.pop((host, (a, service, n)), None)
                else:
                    _record(state, e.kv, app)
            if clock() - last_sync > resync:
                # A full read now and then: a watch stream that broke silently cannot stall us.
                last_sync = clock()
                kvs, state.read_at = store.range(store.keys.status_prefix())
                state.statuses.clear()
                for kv in kvs:
                    _record(state, kv, app)
                state.follow(store.placements(app=app))
                if progress:
                    progress(state)
            if events and progress:
                progress(state)
            if (state.done and not state.stopping()) or state.failed():
                break
            if state.done and settled_by is None:
                settled_by = clock() + settle
    finally:
        watch.cancel()
    return state


def _record(state: WaitState, kv: KV, app: str) -> None:
    try:
        s = ContainerStatus.model_validate_json(kv.value)
    except ValidationError:
        return
    if s.app == app:
        state.statuses[(s.host, (s.app, s.service, s.replica))] = s


# --- deploy ---------------------------------------------------------------------------------------


@dataclass
class DeployReport:
    app: str
    revision: int | None  # None: nothing changed
    plan: AppPlan
    steps: int = 0
    rolled_back_to: int | None = None


@dataclass(frozen=True)
class WaitOptions:
    timeout: float = 300.0
    progress: Progress | None = None
    rollback_on_failure: bool = True


def deploy(
    store: Store,
    app: App,
    *,
    note: str,
    wait: WaitOptions | None = None,
    now: Clock = time.time,
    on_plan: Callable[[AppPlan], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployReport:
    """Deploy ``app``: place it (PlacementError before anything is written), write the new spec
    revision and the placements step by step, and with ``wait`` wait for the hosts after each step,
    following ``update_config`` (parallelism, delay, failure_action)."""
    view = read_view(store)
    current, mod = store.current(app.name)
    ap = plan_app(view, app)
    if wait is None:  # nothing is waited for, so nothing is batched: no start-first replicas
        ap = replace(ap, surge={}, notes=())
    if on_plan:
        on_plan(ap)
    if current is not None and ap.plan.empty:
        live = store.spec(app.name, current.revision)
        if live is not None and live.app == app.model_dump(mode="json"):
            return DeployReport(app.name, None, ap)
    revision = store.last_spec_revision(app.name) + 1
    spec = SpecRevision(revision=revision, app=app.model_dump(mode="json"), created_at=now(), note=note)
    steps = deploy_steps(ap, revision, batched=wait is not None)
    generation = current.generation if current else 0
    previous = current.revision if current else None
    report = DeployReport(app.name, revision, ap)
    for i, step in enumerate(steps):
        generation += 1
        # Until the last step, the controller leaves this deploy's removals to it (for as long as
        # the deploy may wait, so one that was interrupted does not hold them back for ever).
        until = now() + wait.timeout + 60 if wait is not None and i < len(steps) - 1 else None
        record = AppCurrent(revision=revision, generation=generation, updated_at=now(), note=note, previous=previous,
                            updating_until=until)
        decision = step_decision(store.keys, app.name, step, current=record, expected_mod=mod,
                                 spec=spec if i == 0 else None)
        mod = store.commit(decision)
        report.steps += 1
        if wait is None:
            continue
        targets = {c.slot: (c.host, ap.hashes[c.slot[1]]) for c in step.changes if c.host}
        gone: list[tuple[str, Slot]] = []
        if i == len(steps) - 1:
            targets = {slot: (host, ap.hashes[slot[1]]) for slot, host in ap.desired.items()}
            gone = [(c.old_host, c.slot) for s in steps for c in s.deletes if c.old_host]
        if not targets:
            continue
        state = wait_ready(store, app.name, targets, timeout=wait.timeout, progress=wait.progress, gone=gone)
        if state.done:
            services = {c.slot[1] for c in step.changes}
            delay = max((app.services[s].deploy.update_config.delay for s in services), default=0.0)
            if delay and i < len(steps) - 1:
                sleep(delay)
            continue
        _failed_step(store, app, state, step_services={c.slot[1] for c in step.changes}, previous=previous,
                     wait=wait, report=report, now=now)
    return report


def _failed_step(
    store: Store, app: App, state: WaitState, *, step_services: set[str], previous: int | None,
    wait: WaitOptions, report: DeployReport, now: Clock,
) -> None:
    bad = [s for s in sorted(state.targets) if s not in state.ready()]
    reasons = "; ".join(state.why_not(s) for s in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    action = "pause"
    for s in sorted(step_services):
        a = app.services[s].deploy.update_config.failure_action
        if a == "rollback":
            action = "rollback"
        elif a == "continue" and action != "rollback":
            action = "continue"
    if action == "continue" and report.steps:
        return
    if action == "rollback" and wait.rollback_on_failure and previous is not None:
        spec = store.spec(app.name, previous)
        if spec is not None:
            old = App.model_validate(spec.app)
            back = deploy(store, old, note=f"automatic rollback to {previous}", now=now,
                          wait=WaitOptions(wait.timeout, wait.progress, rollback_on_failure=False))
            report.rolled_back_to = previous
            raise DeployError(
                f"{app.name} revision {report.revision} did not become healthy ({reasons}); "
                f"rolled back to revision {previous} (now revision {back.revision})",
                hint=f"fix the spec; `fusion ps {app.name}` shows each container",
            )
    raise DeployError(
        f"{app.name} revision {report.revision} is not running and healthy: {reasons}",
        hint=f"`fusion ps {app.name}` shows each container; `fusion logs {app.name}/SERVICE/N` its output",
    )


def rollback(store: Store, name: str, to: int | None = None, **kw: object) -> DeployReport:
    _, current, _ = live_app(store, name)
    target = to if to is not None else current.previous
    if target is None:
        raise InputError(f"{name} has no previous revision", hint=f"`fusion history {name}` lists them")
    spec = store.spec(name, target)
    if spec is None:
        raise InputError(f"{name} has no revision {target}", hint=f"`fusion history {name}` lists them")
    return deploy(store, App.model_validate(spec.app), note=f"rollback to {target}", **kw)  # type: ignore[arg-type]


def scale(store: Store, name: str, service: str, replicas: int, **kw: object) -> DeployReport:
    app, _, _ = live_app(store, name)
    if service not in app.services:
        raise InputError(f"{name} has no service {service!r}", hint="services: " + ", ".join(sorted(app.services)))
    data = app.model_dump(mode="json")
    data["services"][service]["deploy"]["replicas"] = replicas
    try:
        scaled = App.model_validate(data)
    except ValidationError as e:
        raise InputError(f"cannot scale {name}/{service} to {replicas}: {e.errors()[0]['msg']}") from None
    return deploy(store, scaled, note=f"scale {service}={replicas}", **kw)  # type: ignore[arg-type]


def remove(store: Store, name: str) -> int:
    """Remove the app's placements and ``current`` in one decision; its spec revisions are kept."""
    current, mod = store.current(name)
    if current is None:
        raise NotDeployed(f"app {name!r} is not deployed")
    records = store.placements(app=name)
    store.commit(remove_decision(store.keys, name, records, mod))
    return len(records)


def cordon(store: Store, host: str, reason: str = "", now: Clock = time.time) -> None:
    store.set_cordon(host, CordonRecord(reason=reason, by="cli", at=now()))


def uncordon(store: Store, host: str) -> bool:
    if host not in store.cordons():
        return False
    store.set_cordon(host, None)
    return True
