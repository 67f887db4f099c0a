"""The rollout state machine, driven against a small simulated world (pure: values in, values out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.upgrade.machine import (
    Action,
    Cordon,
    Drain,
    HostObservation,
    HostProgress,
    IllegalTransition,
    Observations,
    Prefetch,
    Reboot,
    ReleaseSlot,
    Rollback,
    RolloutState,
    Stage,
    TakeSlot,
    Uncordon,
    Unstage,
    Verify,
    abort,
    approve,
    new_rollout,
    pause,
    resume,
    step,
)

OLD, NEW = "c0ffee-old", "beef-new"
HOSTS = ["h1", "h2", "h3"]


@dataclass
class World:
    """What the shell and the hosts would do with the actions: hosts boot what was staged, except
    ``hang`` hosts (never come back on the target) and ``sick`` hosts (boot it, never healthy).
    ``slow`` hosts ignore the first ``Stage`` (their staging outlasts the drain)."""

    slot_count: int = 1
    hang: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)
    sick: set[str] = field(default_factory=set)
    booted: dict[str, str] = field(default_factory=lambda: dict.fromkeys(HOSTS, OLD))
    staged: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(HOSTS))
    down: set[str] = field(default_factory=set)  # rebooting right now (unregistered for one tick)
    slots: set[str] = field(default_factory=set)
    cordoned: set[str] = field(default_factory=set)
    drained: set[str] = field(default_factory=set)
    log: list[Action] = field(default_factory=list)

    def observe(self) -> Observations:
        hosts = {
            h: HostObservation(registered=h not in self.down, booted=self.booted[h], staged=self.staged[h],
                               healthy=not (self.booted[h] == NEW and h in self.sick))
            for h in self.booted
        }
        return Observations(hosts=hosts, drained=frozenset(self.drained), slots=frozenset(self.slots))

    def tick(self) -> None:
        self.down.clear()

    def apply(self, actions: list[Action]) -> None:
        self.log += actions
        for a in actions:
            match a:
                case TakeSlot(h) if len(self.slots) < self.slot_count:
                    self.slots.add(h)
                case ReleaseSlot(h):
                    self.slots.discard(h)
                case Cordon(h):
                    self.cordoned.add(h)
                case Uncordon(h):
                    self.cordoned.discard(h)
                    self.drained.discard(h)
                case Drain(h):
                    self.drained.add(h)
                case Stage(h, _) if h in self.slow and h not in self.asked:
                    self.asked.add(h)
                case Stage(h, checksum):
                    self.staged[h] = checksum
                case Unstage(h):
                    self.staged[h] = None
                case Reboot(h):
                    self.down.add(h)
                    if h not in self.hang and self.staged[h]:
                        self.booted[h] = self.staged[h]  # type: ignore[assignment]
                    self.staged[h] = None
                case Rollback(h, checksum):
                    self.down.add(h)
                    self.booted[h] = checksum or OLD


def run(state: RolloutState, world: World, now: float = 1000.0, steps: int = 200, dt: float = 10.0,
        stop: object = None) -> tuple[RolloutState, float, list[int]]:
    """Step until the rollout stops changing; returns the state, the time and, per step, how many hosts were
    in flight (never above max_unavailable)."""
    in_flight = []
    for _ in range(steps):
        world.tick()
        state, actions = step(state, world.observe(), now)
        world.apply(actions)
        in_flight.append(sum(1 for h in state.hosts if h.state not in ("waiting", "done", "failed", "rolled-back")))
        now += dt
        if stop is not None and stop(state):  # type: ignore[operator]
            break
        if state.phase in ("done", "halted", "aborted") and not actions and not in_flight[-1]:
            break
    return state, now, in_flight


def states(state: RolloutState) -> dict[str, str]:
    return {h.name: h.state for h in state.hosts}


def started(world: World) -> list[str]:
    return [a.host for a in world.log if isinstance(a, Cordon)]


def test_three_hosts_one_at_a_time() -> None:
    world = World()
    state, _, in_flight = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world)
    assert state.phase == "done" and states(state) == dict.fromkeys(HOSTS, "done")
    assert max(in_flight) == 1 and started(world) == HOSTS
    assert world.booted == dict.fromkeys(HOSTS, NEW)
    assert not world.slots and not world.cordoned
    # the per-host order of actions
    h1 = [type(a).__name__ for a in world.log if getattr(a, "host", None) == "h1"]
    assert h1 == ["TakeSlot", "Cordon", "Stage", "Drain", "Reboot", "Verify", "Uncordon", "ReleaseSlot"]


def test_a_host_already_on_the_target_is_done_without_a_drain_or_reboot() -> None:
    world = World(booted={"h1": OLD, "h2": NEW, "h3": OLD})
    state, _, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world)
    assert state.phase == "done" and states(state) == dict.fromkeys(HOSTS, "done")
    assert state.hosts[1].message == "already on 2"
    assert started(world) == ["h1", "h3"] and not world.slots and not world.cordoned


def test_two_unavailable_run_two_at_a_time() -> None:
    world = World(slot_count=2)
    state, _, in_flight = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0, max_unavailable=2), world)
    assert state.phase == "done" and max(in_flight) == 2


def test_host_that_does_not_boot_the_target_is_rolled_back_and_counted() -> None:
    world = World(hang={"h1"})
    state, _, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0, max_failures=2, boot_timeout=60), world)
    assert states(state) == {"h1": "rolled-back", "h2": "done", "h3": "done"}
    assert state.failures == 1 and state.failed_versions == {"h1": ("2",)}
    assert state.phase == "done"
    assert Rollback("h1", OLD) in world.log
    assert world.booted["h1"] == OLD and not world.cordoned and not world.slots


def test_unhealthy_target_is_rolled_back_after_the_verify_deadline() -> None:
    world = World(sick={"h2"})
    state, _, _ = run(new_rollout("r1", "3", NEW, HOSTS, 1000.0, max_failures=5, verify_timeout=30), world)
    assert states(state) == {"h1": "done", "h2": "rolled-back", "h3": "done"}


def test_halt_at_max_failures_with_every_host_in_service() -> None:
    world = World(sick={"h1"})
    state, _, _ = run(new_rollout("r1", "3", NEW, HOSTS, 1000.0, max_failures=1), world)
    assert state.phase == "halted" and state.failures == 1
    assert states(state) == {"h1": "rolled-back", "h2": "waiting", "h3": "waiting"}
    assert world.booted == dict.fromkeys(HOSTS, OLD)
    assert not world.cordoned and not world.slots
    assert started(world) == ["h1"]


def test_a_failed_version_is_not_retried_unless_forced() -> None:
    previous = {"h2": ("2",)}
    state = new_rollout("r2", "2", NEW, HOSTS, 0.0, failed_versions=previous)
    assert states(state)["h2"] == "failed" and "--force" in state.host("h2").message
    forced = new_rollout("r2", "2", NEW, HOSTS, 0.0, failed_versions=previous, force=True)
    assert states(forced)["h2"] == "waiting"
    world = World()
    done, _, _ = run(state, world)
    assert states(done) == {"h1": "done", "h2": "failed", "h3": "done"} and world.booted["h2"] == OLD


def test_canary_waits_for_approval() -> None:
    world = World()
    state, now, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0, canary=1), world)
    assert states(state) == {"h1": "done", "h2": "waiting", "h3": "waiting"}
    assert state.phase == "running" and state.awaiting_approval
    state, _, _ = run(approve(state), world, now)
    assert state.phase == "done" and started(world) == HOSTS


def test_canary_auto_promote() -> None:
    state, _, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0, canary=2, auto_promote=True), World(slot_count=3))
    assert state.phase == "done"


def test_pause_lets_the_host_in_flight_finish_then_resume() -> None:
    world = World()
    state, now, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world,
                        stop=lambda s: s.host("h1").state == "rebooting")
    state = pause(state)
    with pytest.raises(IllegalTransition):
        pause(state)
    state, now, _ = run(state, world, now, steps=20)
    assert states(state) == {"h1": "done", "h2": "waiting", "h3": "waiting"} and state.phase == "paused"
    state, _, _ = run(resume(state), world, now)
    assert state.phase == "done"


def test_abort_puts_a_draining_host_back() -> None:
    world = World()
    state, now, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world,
                        stop=lambda s: s.host("h1").state == "draining")
    state = abort(state)
    state, actions = step(state, world.observe(), now)
    assert state.host("h1").state == "waiting"
    assert actions == [Unstage("h1"), Uncordon("h1"), ReleaseSlot("h1")]  # it was staged during the drain
    world.apply(actions)
    state, actions = step(state, world.observe(), now + 10)
    assert actions == [] and state.phase == "aborted" and not world.cordoned and not world.slots
    with pytest.raises(IllegalTransition):
        resume(state)


def test_a_host_whose_staging_outlasts_its_drain_reboots_once_staged() -> None:
    world = World(slow={"h1"})
    state, _, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world)
    assert state.phase == "done" and world.booted == dict.fromkeys(HOSTS, NEW)
    h1 = [type(a).__name__ for a in world.log if getattr(a, "host", None) == "h1"]
    assert h1 == ["TakeSlot", "Cordon", "Stage", "Drain", "Stage", "Reboot", "Verify", "Uncordon", "ReleaseSlot"]


def test_abort_while_staging_unstages() -> None:
    world = World(slow={"h1"})
    state, now, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world,
                        stop=lambda s: s.host("h1").state == "staging")
    state, actions = step(abort(state), World().observe(), now)  # not staged yet in this world
    assert actions == [Unstage("h1"), Uncordon("h1"), ReleaseSlot("h1")]


MONDAY = datetime(2026, 11, 23, 9, 20, tzinfo=UTC).timestamp()  # the window is Saturdays only
SATURDAY = datetime(2026, 11, 28, 3, 1, tzinfo=UTC).timestamp()


def test_closed_window_starts_nothing_but_a_rebooting_host_finishes() -> None:
    state = new_rollout("r1", "2", NEW, HOSTS, MONDAY, window="Sat 02:00-05:00 UTC")
    state, actions = step(state, World().observe(), MONDAY)
    assert actions == [] and states(state) == dict.fromkeys(HOSTS, "waiting")
    rebooting = state.model_copy(update={"hosts": (
        HostProgress(name="h1", state="rebooting", deadline=MONDAY + 600, previous=OLD),
        *state.hosts[1:])})
    world = World(booted={"h1": NEW, "h2": OLD, "h3": OLD}, slots={"h1"}, cordoned={"h1"})
    state, actions = step(rebooting, world.observe(), MONDAY + 10)
    assert actions == [Verify("h1")]
    state, actions = step(state, world.observe(), MONDAY + 20)
    assert state.host("h1").state == "done" and actions == [Uncordon("h1"), ReleaseSlot("h1")]
    # the window opens on Saturday: h2 starts
    _, actions = step(state, World(slots=set()).observe(), SATURDAY)
    assert actions == [TakeSlot("h2")]


def test_resume_from_persisted_state_gives_the_same_actions() -> None:
    for stop_at in ("draining", "staging", "rebooting", "verifying"):
        world = World()
        state, now, _ = run(new_rollout("r1", "2", NEW, HOSTS, 1000.0), world,
                            stop=lambda s, w=stop_at: s.host("h2").state == w)
        reloaded = RolloutState.from_json(state.to_json())
        assert reloaded == state
        world.tick()
        obs = world.observe()
        assert step(reloaded, obs, now) == step(state, obs, now)


def test_illegal_transitions_raise() -> None:
    state = new_rollout("r1", "2", NEW, HOSTS, 0.0)
    with pytest.raises(IllegalTransition, match="no canary"):
        approve(state)
    with pytest.raises(IllegalTransition):
        resume(state)
    from orchestrator.upgrade.machine import _move

    with pytest.raises(IllegalTransition, match="h1 is waiting; cannot go to verifying"):
        _move(state.hosts[0], "verifying", 0.0)


def test_a_slot_held_when_not_allowed_to_start_is_released() -> None:
    state = pause(new_rollout("r1", "2", NEW, HOSTS, 0.0))
    _, actions = step(state, World(slots={"h1"}).observe(), 10.0)
    assert actions == [ReleaseSlot("h1")]


def test_waiting_hosts_prefetch_in_parallel_even_outside_the_window() -> None:
    state = new_rollout("r1", "2", NEW, HOSTS, MONDAY, window="Sat 02:00-05:00 UTC")
    obs = Observations(hosts={
        "h1": HostObservation(booted=OLD, fetched=False),
        "h2": HostObservation(booted=OLD, fetched=True),
        "h3": HostObservation(booted=OLD, fetched=False),
    })
    _, actions = step(state, obs, MONDAY)
    assert actions == [Prefetch("h1", NEW), Prefetch("h3", NEW)]
    _, actions = step(abort(state), obs, MONDAY)
    assert actions == []


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5),
    bad=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["hang", "sick"])), max_size=4),
    max_unavailable=st.integers(min_value=1, max_value=3),
    max_failures=st.integers(min_value=1, max_value=3),
    canary=st.integers(min_value=0, max_value=2),
)
def test_any_rollout_ends_with_every_host_in_service(
    n: int, bad: list[tuple[int, str]], max_unavailable: int, max_failures: int, canary: int
) -> None:
    hosts = [f"h{i}" for i in range(n)]
    world = World(slot_count=max_unavailable, booted=dict.fromkeys(hosts, OLD), staged=dict.fromkeys(hosts))
    for i, kind in bad:
        if i < n:
            (world.hang if kind == "hang" else world.sick).add(hosts[i])
    state = new_rollout("r", "2", NEW, hosts, 0.0, max_unavailable=max_unavailable, max_failures=max_failures,
                        canary=canary, auto_promote=True)
    state, _, in_flight = run(state, world, now=0.0, steps=1000)
    assert max(in_flight) <= max_unavailable
    assert state.phase in ("done", "halted")
    assert not world.slots and not world.cordoned
    assert all(h.state in ("waiting", "done", "rolled-back") for h in state.hosts)
    assert state.failures == sum(1 for h in state.hosts if h.state == "rolled-back")
    for h in state.hosts:  # a host is on the target only if it is done there, and healthy either way
        assert (world.booted[h.name] == NEW) == (h.state == "done")
    if state.phase == "done":
        assert state.failures < max_failures
    else:
        assert state.failures >= max_failures
