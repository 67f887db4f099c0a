"""Deploy, scale, remove, rollback and host-loss decisions: pure functions from a read-only view of
the cluster to :class:`~common.store.Decision` values.

No side effects and no clock (``now`` is passed in). The CLI (and the reconcile loop) read a
:class:`ClusterView` through the store, call these, and commit the decisions one by one.

A deploy is a list of *steps*; each step is one decision (one transaction) that also bumps the
app's ``current`` record and is guarded by its mod_revision, so two people deploying at once
cannot interleave. Step 1 writes the new spec revision, the creates, moves and removes, and the
first batch of in-place updates; each later step is one more ``update_config.parallelism`` batch
(the caller waits for the previous batch to be healthy before committing the next).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from common.store import Compare, Decision, Delete, Put
from orchestrator.placement import Host, Occupancy, PlacementError, Resources, Slot, occupancy, place_partial
from orchestrator.plan import Change, Plan, batches, demands, diff, service_hashes
from specs.app import App
from specs.cluster import AppCurrent, HostRecord, Keys, PlacementRecord, SpecRevision


@dataclass(frozen=True)
class ClusterView:
    """What a decision is based on (read through the store at one moment)."""

    hosts: tuple[HostRecord, ...] = ()
    cordons: frozenset[str] = frozenset()
    placements: tuple[PlacementRecord, ...] = ()
    apps: Mapping[str, App] = field(default_factory=dict)  # live spec of every deployed app
    lost: frozenset[str] = frozenset()  # hosts known to be gone even if still registered
    # hosts that hold placements but are not registered, to be treated as alive anyway (a reconciler
    # that has just started gives agents a grace period to register before moving their containers)
    assume_alive: frozenset[str] = frozenset()


def to_hosts(view: ClusterView) -> list[Host]:
    """Registered hosts are alive (unless in ``lost``); hosts that only appear in placements are not
    (unless in ``assume_alive``)."""
    out = {}
    for h in view.hosts:
        cap = h.capacity
        capacity = None if cap.cpus is None and cap.memory is None else Resources(
            cap.cpus if cap.cpus is not None else float("inf"), cap.memory if cap.memory is not None else 1 << 62)
        out[h.name] = Host(h.name, dict(h.labels), capacity, h.name in view.cordons, h.name not in view.lost)
    for r in view.placements:
        if r.host not in out:
            out[r.host] = Host(r.host, {}, None, r.host in view.cordons, alive=r.host in view.assume_alive)
    return sorted(out.values(), key=lambda h: h.name)


def placement_of(records: Iterable[PlacementRecord], alive: set[str],
                 cordoned: frozenset[str] = frozenset()) -> dict[Slot, str]:
    """slot -> host from placement records; a slot on several hosts (mid-drain) counts where a live
    one is, preferably one that is not cordoned (the replacement, not the replica being drained)."""
    out: dict[Slot, str] = {}
    for r in sorted(records, key=lambda r: (r.app, r.service, r.replica, r.host not in alive,
                                            r.host in cordoned, r.host)):
        out.setdefault((r.app, r.service, r.replica), r.host)
    return out


@dataclass(frozen=True)
class AppPlan:
    app: App
    desired: dict[Slot, str]
    hashes: dict[str, str]
    plan: Plan
    failures: tuple[str, ...] = ()  # replicas left unplaced (only with partial=True)
    # start-first in-place updates: extra replicas of the new definition that run (on hosts where
    # they fit) until every replica of their service is updated; slot -> host
    surge: dict[Slot, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the plan could not do as asked (a surge that does not fit)

    def lines(self) -> list[str]:
        """The plan for a person: the diff, the surge replicas, the notes."""
        surge = [f"+ {app}/{service}/{n} on {host} (start-first: until the update is done)"
                 for (app, service, n), host in sorted(self.surge.items())]
        return self.plan.lines() + surge + [f"! {note}" for note in self.notes]


def plan_app(view: ClusterView, app: App, *, partial: bool = False) -> AppPlan:
    """Place ``app`` on the view's hosts (other apps' containers count as occupied) and diff.
    Raises PlacementError when it cannot be placed, unless ``partial``: then what cannot be placed
    stays where it is (on its lost host) and ``failures`` says why."""
    hosts = to_hosts(view)
    alive = {h.name for h in hosts if h.alive}
    other_apps = [a for name, a in sorted(view.apps.items()) if name != app.name]
    other_records = [r for r in view.placements if r.app != app.name and r.host in alive]
    occupied = occupancy(placement_of(other_records, alive), [d for a in other_apps for d in demands(a)])
    mine = [r for r in view.placements if r.app == app.name]
    current = placement_of(mine, alive, view.cordons)
    wanted = demands(app)
    desired, failures = place_partial(hosts, wanted, current, occupied)
    if failures and not partial:
        raise PlacementError(failures)
    hashes = service_hashes(app)
    plan = diff(app.name, desired, hashes, view.placements)
    if failures:
        replicas = {d.service: d.replicas for d in wanted}
        kept = tuple(c for c in plan.removes if c.slot[2] > replicas.get(c.slot[1], 0) or c.slot in desired)
        plan = replace(plan, removes=kept)
        return AppPlan(app, desired, hashes, plan, tuple(failures))
    surge, notes = _surge(app, plan, hosts, desired, mine, occupied)
    return AppPlan(app, desired, hashes, plan, (), surge, notes)


def _surge(app: App, plan: Plan, hosts: list[Host], desired: dict[Slot, str],
           records: list[PlacementRecord], occupied: Mapping[str, Occupancy]) -> tuple[dict[Slot, str], tuple[str, ...]]:
    """Start-first in-place updates: for each ``start-first`` service with replicas to update in
    place, one extra replica per ``parallelism`` batch, placed like any replica (a surge replica
    left by an interrupted update stays where it is). Its service never runs fewer than
    ``replicas`` containers during the update; where no host has room, the update is stop-first
    and a note says so."""
    updating: dict[str, int] = {}
    for c in plan.updates:
        updating[c.slot[1]] = updating.get(c.slot[1], 0) + 1
    services = {s: min(app.services[s].deploy.update_config.parallelism or n, n) for s, n in updating.items()
                if app.services[s].deploy.update_config.order == "start-first"}
    if not services:
        return {}, ()
    wanted = [replace(d, replicas=d.replicas + services.get(d.service, 0)) for d in demands(app)]
    extra = {slot for d in wanted if d.service in services
             for slot in ((app.name, d.service, n) for n in range(d.replicas - services[d.service] + 1, d.replicas + 1))}
    current = dict(desired) | {(r.app, r.service, r.replica): r.host for r in records if (r.app, r.service, r.replica) in extra}
    placed, _ = place_partial(hosts, wanted, current, occupied)
    surge = {slot: host for slot, host in placed.items() if slot in extra}
    notes = tuple(f"{s}: no host has room for a start-first replica; its update is stop-first"
                  for s in sorted(services) if not any(slot[1] == s for slot in surge))
    return surge, notes


def _record(app: App, slot: Slot, host: str, revision: int, hashes: Mapping[str, str]) -> PlacementRecord:
    _, service, n = slot
    order = app.services[service].deploy.update_config.order
    return PlacementRecord(app=app.name, service=service, replica=n, host=host, spec_revision=revision,
                           service_hash=hashes[service], order=order)


def _put(keys: Keys, r: PlacementRecord) -> Put:
    return Put(keys.placement(r.host, r.app, r.service, r.replica), r.to_json())


def _delete(keys: Keys, c: Change) -> Delete:
    app, service, n = c.slot
    assert c.old_host is not None
    return Delete(keys.placement(c.old_host, app, service, n))


@dataclass(frozen=True)
class Step:
    """One transaction's worth of placement changes."""

    puts: tuple[PlacementRecord, ...] = ()
    deletes: tuple[Change, ...] = ()
    changes: tuple[Change, ...] = ()  # what this step does, for display and health gating


def deploy_steps(ap: AppPlan, revision: int, *, batched: bool = True) -> list[Step]:
    """The steps of a deploy of ``ap`` as spec ``revision`` (one step unless ``batched``).

    Batched, a move of a service whose ``update_config.order`` is ``start-first`` starts the
    replica on its new host in step 1 and stops the old one only in step 2 (after the caller has
    seen step 1 healthy); ``stop-first`` moves do both in step 1. The plan's surge replicas start
    in step 1 too, the in-place updates follow batch by batch, and a last step stops the surge."""
    app, plan = ap.app, ap.plan
    surge = ap.surge if batched else {}

    def start_first(c: Change) -> bool:
        return batched and app.services[c.slot[1]].deploy.update_config.order == "start-first"

    def record(slot: Slot, host: str) -> PlacementRecord:
        return _record(app, slot, host, revision, ap.hashes)

    puts = [record(c.slot, c.host) for c in plan.creates + plan.moves if c.host]
    puts += [record(slot, host) for slot, host in sorted(surge.items())]
    deletes = [c for c in plan.removes if surge.get(c.slot) != c.old_host]  # a surge put replaces its key
    deletes += [Change(c.slot, None, c.old_host) for c in plan.moves if not start_first(c)]
    later = tuple(Change(c.slot, None, c.old_host) for c in plan.moves if start_first(c))
    groups = batches(plan, app) if batched else [list(plan.updates)]
    first = [] if surge or not groups else groups.pop(0)
    started = tuple(Change(slot, host) for slot, host in sorted(surge.items()))
    steps = [Step(tuple(puts + [record(c.slot, c.host) for c in first if c.host]), tuple(deletes),
                  plan.creates + plan.moves + started + tuple(first))]
    if later:
        steps.append(Step((), later, ()))
    steps += [Step(tuple(record(c.slot, c.host) for c in group if c.host), (), tuple(group)) for group in groups]
    if surge:
        steps.append(Step((), tuple(Change(slot, None, host) for slot, host in sorted(surge.items())), ()))
    return steps


def step_decision(
    keys: Keys,
    app: str,
    step: Step,
    *,
    current: AppCurrent,
    expected_mod: int,
    spec: SpecRevision | None = None,
    note: str = "",
) -> Decision:
    """One step as a transaction: the placement ops + the new ``current``, guarded by the mod_revision
    the caller read ``current`` at (0: the app must not be deployed) and, with a new spec, by that
    spec key not existing yet."""
    compares = [Compare(keys.current(app), expected_mod)]
    # The guard key first: if etcd makes us split a big decision, the first part moves it.
    ops: list[Put | Delete] = [Put(keys.current(app), current.to_json())]
    if spec is not None:
        compares.append(Compare(keys.spec(app, spec.revision), 0))
        ops.append(Put(keys.spec(app, spec.revision), spec.to_json()))
    ops += [_delete(keys, c) for c in step.deletes]
    ops += [_put(keys, r) for r in step.puts]
    return Decision(tuple(compares), tuple(ops), note or current.note)


def remove_decision(keys: Keys, app: str, records: Iterable[PlacementRecord], expected_mod: int) -> Decision:
    """``fusion rm``: every placement of the app and its ``current`` go; spec revisions stay."""
    ops: list[Put | Delete] = [Delete(keys.current(app))]
    ops += [Delete(keys.placement(r.host, r.app, r.service, r.replica)) for r in records if r.app == app]
    return Decision((Compare(keys.current(app), expected_mod),), tuple(ops), f"remove {app}")


def reconcile_steps(view: ClusterView, app: App, revision: int, *,
                    updating: bool = False) -> tuple[Step | None, tuple[str, ...]]:
    """Host loss (and any other drift): re-place what must move, create what is missing, remove
    what no longer belongs -- as much as can be placed (the rest stays put and is explained in the
    second value). In-place updates are left to deploys (a paused rollout stays paused), and so
    are removals while a deploy is ``updating`` (its surge replicas and the old halves of its
    moves are its own to stop). The step is None when nothing needs to change."""
    ap = plan_app(view, app, partial=True)
    # Hosts in assume_alive have not registered yet: their labels are unknown, so nothing is taken
    # off them until they register or the grace period ends.
    # A replica on a cordoned host that also runs elsewhere is being drained: the drain stops it
    # once its replacement is healthy, not us.
    waiting = view.assume_alive
    draining = {c.slot for c in ap.plan.removes if c.old_host in view.cordons and c.slot in ap.desired}
    plan = Plan(ap.plan.creates, (), tuple(c for c in ap.plan.moves if c.old_host not in waiting),
                tuple(c for c in ap.plan.removes if c.old_host not in waiting and c.slot not in draining
                      and not updating),
                ap.plan.unchanged + ap.plan.updates)
    if plan.empty:
        return None, ap.failures
    return deploy_steps(AppPlan(app, ap.desired, ap.hashes, plan), revision, batched=False)[0], ap.failures


def drain_steps(view: ClusterView, app: App, revision: int, host: str) -> tuple[Step, Step] | None:
    """Move ``app``'s replicas off ``host``, replacements first (for ``fusion drain`` / upgrades):
    step 1 starts each replica on another host (chosen as if ``host`` were gone), step 2 -- to be
    committed once step 1 is healthy -- stops the ones on ``host``. No replica is down in between,
    so ``min_available`` always holds. None when nothing of ``app`` runs on ``host``.
    Raises PlacementError when the replicas have nowhere else to go."""
    ap = plan_app(replace(view, lost=view.lost | {host}), app)
    moves = [c for c in ap.plan.moves if c.old_host == host]
    if not moves:
        return None
    start = Step(tuple(_record(app, c.slot, c.host, revision, ap.hashes) for c in moves if c.host), (), tuple(moves))
    stop = Step((), tuple(Change(c.slot, None, host) for c in moves), ())
    return start, stop
