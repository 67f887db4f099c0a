"""``fusion-agent``: the host agent's loop (the imperative shell around :mod:`host.agent.reconcile`).

Side effects: etcd (through :class:`common.store.Store`), systemd and podman (through
:class:`host.agent.systemd.Systemd`), a few files (/etc/fusion/labels, /proc/meminfo, the lease
file under /run/fusion), the sd_notify socket, and log lines on stderr (the journal in a host).

One pass (:meth:`Agent.reconcile`): placements of this host -> rendered units (units.render,
podman engine, one spec revision cache) -> ``reconcile.plan`` against the Fusion units on disk ->
apply -> put a ContainerStatus for every placement whose report changed. The loop runs a pass at
start (so a restarted agent adopts what runs and touches nothing that is right), then whenever the
watch on ``placements/<host>/`` reports a change, and every ``refresh`` seconds to report state
changes systemd made by itself. The lease is kept alive between passes; ``WATCHDOG=1`` is sent
each turn of the loop.

Configuration (flags, else environment — ``/etc/fusion/lab.env`` in a lab host):
``--etcd``/``FUSION_ETCD``, ``--host``/``FUSION_HOST`` (default: the hostname),
``--address``/``FUSION_ADDRESS``, ``--root``/``FUSION_ROOT``, labels from ``/etc/fusion/labels``
(``key=value`` lines) and ``FUSION_LABELS`` (``k=v,k=v``), ``FUSION_PODMAN_ARGS`` (default
``--cgroups=disabled`` when running in a container such as systemd-nspawn), and the auto-update
mode (``FUSION_AUTO_UPDATE=fleetlock``, ``FUSION_FLEETLOCK_URL``, ...: see
:mod:`host.agent.autoupdate`), whose turn comes with the health checks on OSTree hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.store import KV, EtcdConfig, Store, StoreError, WatchEvent
from host.agent import autoupdate, discovery, mesh, reconcile, tree
from host.agent.logs import LogServer
from host.agent.systemd import Systemd, UnitProps
from specs.app import App
from specs.cluster import (
    Capacity,
    ContainerStatus,
    HostHealth,
    HostRecord,
    Keys,
    PlacementRecord,
    PublishedPort,
    TreeRequest,
    TreeState,
    container_unit,
    endpoints,
)
from specs.errors import FusionError
from units.render import HostOptions, RenderError, container_name, render_service

log = logging.getLogger("fusion-agent")

AGENT_VERSION = "1"
LABELS_FILE = Path("/etc/fusion/labels")
LEASE_FILE = Path("/run/fusion/agent.lease")
DEFAULT_TTL = 10
REFRESH = 5.0  # seconds between status refreshes when nothing happens
RESYNC = 60.0  # seconds between full re-reads of the placements (the watch does the real work)
ONCE_SETTLE = 90.0
HEALTH_EVERY = 5.0  # seconds between runs of the host's health checks  # --once: how long to wait for started units to settle before reporting
HEALTH_STATES = ("healthy", "unhealthy", "starting")
UNIT_STATES = ("active", "activating", "deactivating", "inactive", "failed", "reloading")


# --- pure helpers ---------------------------------------------------------------------------------


def parse_labels(text: str) -> dict[str, str]:
    """``key=value`` per line or comma-separated; ``#`` comments and blank lines ignored."""
    out: dict[str, str] = {}
    for line in text.replace(",", "\n").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_meminfo(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def previous_add_hosts(path: Path) -> dict[str, str]:
    try:
        return reconcile.add_hosts(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def published_ports(app: App, service: str) -> list[PublishedPort]:
    return [
        PublishedPort(container_port=p.target, host_port=p.published, protocol=p.protocol, host_ip=p.host_ip)
        for p in app.services[service].ports
        if p.published is not None
    ]


def container_status(
    p: PlacementRecord,
    props: UnitProps | None,
    health: str | None,
    ports: list[PublishedPort],
    address: str | None,
    message: str,
) -> ContainerStatus:
    state = props.active if props is not None and props.active in UNIT_STATES else "unknown"
    if not message and props is not None and props.active == "failed":
        message = f"unit failed ({props.result or props.sub})"
    return ContainerStatus(
        app=p.app,
        service=p.service,
        replica=p.replica,
        host=p.host,
        unit=container_unit(p.app, p.service, p.replica),
        spec_revision=p.spec_revision,
        service_hash=p.service_hash,
        state=state,  # type: ignore[arg-type]
        sub_state=props.sub if props is not None else "",
        health=health if health in HEALTH_STATES else "none",  # type: ignore[arg-type]
        address=address,
        ports=ports,
        restarts=props.restarts if props is not None else 0,
        message=message,
    )


# --- side effects: the host ----------------------------------------------------------------------


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's notify socket (no-op without ``NOTIFY_SOCKET``)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())
        return True
    return False


def watchdog_interval() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when systemd asked for keep-alives for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def host_capacity() -> Capacity:
    mem = None
    with contextlib.suppress(OSError):
        mem = parse_meminfo(Path("/proc/meminfo").read_text())
    return Capacity(cpus=float(os.cpu_count() or 1), memory=mem)


def host_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    with contextlib.suppress(OSError):
        labels.update(parse_labels(LABELS_FILE.read_text()))
    labels.update(parse_labels(os.environ.get("FUSION_LABELS", "")))
    return labels


def tree_state() -> TreeState:
    """The booted OSTree deployment (empty when this host is not an OSTree system)."""
    if not Path("/run/ostree-booted").exists():
        return TreeState()
    try:
        from host.tree import ops  # noqa: PLC0415 (ostree tools are only needed on OSTree hosts)

        deps = ops.status(Path("/sysroot"))
    except (FusionError, OSError, ValueError) as e:
        log.warning("cannot read the OSTree status: %s", e)
        return TreeState()
    booted = next((d for d in deps if d.booted), None)
    staged = next((d for d in deps if d.staged or d.pending), None)  # what the next boot starts
    rollback = next((d for d in deps if d.rollback), None)
    remote_url = None
    if booted is not None and booted.origin and ":" in booted.origin:
        with contextlib.suppress(FusionError):
            remote_url = ops.remote_url(Path("/sysroot"), booted.origin.split(":", 1)[0])
    return TreeState(
        origin=booted.origin if booted else None,
        remote_url=remote_url,
        osname=booted.osname if booted else None,
        booted=booted.checksum if booted else None,
        booted_version=booted.version if booted else None,
        staged=staged.checksum if staged else None,
        rollback=rollback.checksum if rollback else None,
    )


def default_podman_args() -> tuple[str, ...]:
    env = os.environ.get("FUSION_PODMAN_ARGS")
    if env is not None:
        return tuple(shlex.split(env))
    # systemd-nspawn (and other containers) leave cgroupfs read-only: see MACHINE-NOTES.
    return ("--cgroups=disabled",) if Path("/run/systemd/container").exists() else ()


# --- the agent ------------------------------------------------------------------------------------


@dataclass
class AgentConfig:
    etcd: str
    host: str
    address: str | None = None
    root: str = "/fusion"
    ttl: int = DEFAULT_TTL
    unit_dir: Path = Path("/etc/systemd/system")
    podman_args: tuple[str, ...] = ()
    refresh: float = REFRESH
    auto_update: autoupdate.Settings | None = None


@dataclass
class Agent:
    config: AgentConfig
    store: Store
    systemd: Systemd
    lease: int = 0
    started_at: float = field(default_factory=time.time)
    placements: dict[str, PlacementRecord] = field(default_factory=dict)  # key -> record
    specs: dict[tuple[str, int], App] = field(default_factory=dict)
    reported: dict[str, ContainerStatus] = field(default_factory=dict)  # status key -> last report
    messages: dict[tuple[str, str, int], str] = field(default_factory=dict)
    last_keepalive: float = field(default_factory=time.monotonic)
    registered: HostRecord | None = None
    warned: set[tuple[str, str]] = field(default_factory=set)
    health: HostHealth = field(default_factory=HostHealth)
    tree_request: TreeRequest | None = None
    routes: dict[int, tuple[str, str]] = field(default_factory=dict)  # the routing mesh's ports
    reboot: Any = tree.system_reboot  # () -> None
    updater: autoupdate.AutoUpdater | None = None  # the auto-update mode, when it is on

    @property
    def keys(self) -> Keys:
        return self.store.keys

    # --- registration -----------------------------------------------------------------------------

    def host_record(self) -> HostRecord:
        c = self.config
        return HostRecord(
            name=c.host,
            address=c.address,
            labels=host_labels(),
            capacity=host_capacity(),
            tree=tree.fetched(self.tree_request, tree_state()),
            health=self.health,
            agent_version=AGENT_VERSION,
            started_at=self.started_at,
            lease_ttl=c.ttl,
        )

    def acquire_lease(self) -> None:
        """Reuse the lease of this host's previous agent if it is still alive (an agent restart
        then changes nothing in etcd), else grant a new one."""
        with contextlib.suppress(OSError, ValueError, StoreError):
            old = int(LEASE_FILE.read_text().strip())
            if old and self.store.lease_keepalive(old) > 0:
                self.lease = old
                log.info("kept lease %x", old)
                return
        self.lease = self.store.lease_grant(self.config.ttl)
        self.reported.clear()  # every status must be put again under the new lease
        with contextlib.suppress(OSError):
            LEASE_FILE.parent.mkdir(parents=True, exist_ok=True)
            LEASE_FILE.write_text(f"{self.lease}\n")
        log.info("granted lease %x (ttl %ss)", self.lease, self.config.ttl)

    def register(self) -> None:
        self.registered = self.host_record()
        self.store.register_host(self.registered, self.lease)
        log.info("registered host %s", self.config.host)

    def register_if_changed(self) -> None:
        """Put the registration again when labels, capacity or the OSTree deployments changed."""
        record = self.host_record()
        if record != self.registered:
            self.registered = record
            self.store.register_host(record, self.lease)
            log.info("host record changed: registered again")

    def heartbeat(self) -> None:
        """Keep the lease (every ttl/3) and systemd's watchdog alive; called during long work."""
        now = time.monotonic()
        if now - self.last_keepalive >= self.config.ttl / 3:
            self.keepalive()
        sd_notify("WATCHDOG=1")

    def keepalive(self) -> None:
        start = time.monotonic()
        since, self.last_keepalive = start - self.last_keepalive, start
        ttl = self.store.lease_keepalive(self.lease)
        took = time.monotonic() - start
        if since > self.config.ttl * 2 / 3 or took > self.config.ttl / 3:  # why a lease may run out
            log.warning("lease %x kept alive late: %.1fs after the last keepalive, which took %.1fs",
                        self.lease, since, took)
        if ttl <= 0:
            log.warning("lease %x expired: registering again", self.lease)
            LEASE_FILE.unlink(missing_ok=True)
            self.acquire_lease()
            self.register()

    # --- the OS tree and the host's health --------------------------------------------------------

    def check_health(self) -> bool:
        """Run the health checks; True when the result changed (then registered again)."""
        health = tree.check_health()
        if (health.ok, health.failed) == (self.health.ok, self.health.failed):
            return False
        self.health = health
        log.log(logging.INFO if health.ok else logging.WARNING, "host health: %s",
                "ok" if health.ok else "; ".join(health.failed))
        return True

    def follow_tree(self) -> None:
        """Read this host's TreeRequest and carry it out (fetch, stage, or reboot into it)."""
        kv = self.store.get(self.keys.tree(self.config.host))
        try:
            self.tree_request = None if kv is None else TreeRequest.model_validate_json(kv.value)
        except ValidationError as e:
            log.error("ignoring malformed tree request %s: %s", kv.key if kv else "", e.errors()[0]["msg"])
            self.tree_request = None
        if self.tree_request is not None and Path("/run/ostree-booted").exists():
            try:
                tree.obey(self.tree_request, self.reboot)
            except FusionError as e:
                log.error("tree request %s: %s", self.tree_request.checksum[:12], e)
        self.register_if_changed()

    def auto_update(self) -> None:
        """One turn of the auto-update mode (a no-op when it is off): see host.agent.autoupdate."""
        if self.updater is None:
            return
        try:
            # healthy = the health checks pass and the boot is over (the agent itself is part of it)
            healthy = self.health.ok and tree.boot_complete()
            step = self.updater.tick(healthy=healthy, rollout=self.tree_request is not None)
        except FusionError as e:
            log.error("auto-update: %s", e)
            return
        if step != "nothing":
            self.register_if_changed()

    # --- placements -------------------------------------------------------------------------------

    def load_placements(self) -> int:
        """Range this host's placements; returns the revision to watch from."""
        kvs, revision = self.store.range(self.keys.placements_prefix(self.config.host))
        self.placements = {}
        for kv in kvs:
            self._put_placement(kv)
        return revision + 1

    def _put_placement(self, kv: KV) -> None:
        try:
            self.placements[kv.key] = PlacementRecord.model_validate_json(kv.value)
        except ValidationError as e:
            log.error("ignoring malformed placement %s: %s", kv.key, e.errors()[0]["msg"])

    def apply_events(self, events: list[WatchEvent]) -> int:
        """Apply the placement events among ``events``; returns how many there were."""
        prefix = self.keys.placements_prefix(self.config.host)
        events = [ev for ev in events if ev.kv.key.startswith(prefix)]
        for ev in events:
            if ev.type == "DELETE":
                self.placements.pop(ev.kv.key, None)
            else:
                self._put_placement(ev.kv)
        return len(events)

    def app(self, name: str, revision: int) -> App | None:
        key = (name, revision)
        if key not in self.specs:
            spec = self.store.spec(name, revision)
            if spec is None:
                return None
            self.specs[key] = App.model_validate(spec.app)
        return self.specs[key]

    def mesh_routes(self, statuses: list[ContainerStatus]) -> dict[int, tuple[str, str]]:
        """The published ports this host forwards to other hosts (see ``host.agent.mesh``)."""
        local_ports: set[int] = set()
        for p in self.placements.values():
            app = self.app(p.app, p.spec_revision)
            if app is not None and p.service in app.services:
                local_ports.update(pp.host_port for pp in published_ports(app, p.service))
        self.routes = mesh.mesh_routes(statuses, self.config.host,
                                       {(p.app, p.service) for p in self.placements.values()}, local_ports)
        return self.routes

    def has_remote_dependencies(self) -> bool:
        """Whether a container here depends on a service with no replica on this host."""
        local: dict[str, set[str]] = {}
        for p in self.placements.values():
            local.setdefault(p.app, set()).add(p.service)
        for p in self.placements.values():
            app = self.specs.get((p.app, p.spec_revision))
            if app is not None and p.service in app.services and set(app.services[p.service].depends_on) - local[p.app]:
                return True
        return False

    def desired(self) -> dict[str, reconcile.DesiredUnit]:
        """Every unit this host's placements need, rendered (with their volumes and networks)."""
        self.messages = {}
        local: dict[str, dict[str, list[int]]] = {}  # app -> service -> replicas on this host
        for p in self.placements.values():
            local.setdefault(p.app, {}).setdefault(p.service, []).append(p.replica)
        groups: dict[tuple[str, int, str], list[PlacementRecord]] = {}
        for p in self.placements.values():
            groups.setdefault((p.app, p.spec_revision, p.service), []).append(p)
        needs_discovery = any(
            set(app.services[svc].depends_on) - set(local[name])
            for (name, rev, svc) in groups
            if (app := self.app(name, rev)) is not None and svc in app.services
        )
        statuses = self.store.statuses()
        ready = {a: endpoints(statuses, a) for a in local} if needs_discovery else {}
        out = {name: reconcile.desired_unit(name, text)
               for name, text in mesh.mesh_units(self.mesh_routes(statuses)).items()}
        for (app_name, revision, service), ps in sorted(groups.items()):
            app = self.app(app_name, revision)
            if app is None or service not in app.services:
                for p in ps:
                    self.messages[(p.app, p.service, p.replica)] = f"spec revision {revision} not found"
                continue
            replicas = {s: r for s, r in local[app_name].items() if s in app.services}
            replicas[service] = sorted(p.replica for p in ps)
            first = self.config.unit_dir / container_unit(app_name, service, replicas[service][0])
            here = set(local[app_name])
            addresses = discovery.remote_dependencies(app, service, here, ready.get(app_name, {}),
                                                      previous_add_hosts(first))
            missing = discovery.waiting_for(app, service, here, addresses)
            if missing and not any((self.config.unit_dir / container_unit(app_name, service, n)).exists()
                                   for n in replicas[service]):
                for p in ps:  # first start: not before what it depends on can be reached
                    self.messages[(p.app, p.service, p.replica)] = (
                        f"waiting for {', '.join(missing)} (depends_on) to be ready on some host")
                continue
            options = HostOptions(podman_args=self.config.podman_args + discovery.add_host_args(addresses))
            try:
                result = render_service(app, service, engine="podman", replicas=replicas, host=options)
            except RenderError as e:
                for p in ps:
                    self.messages[(p.app, p.service, p.replica)] = str(e)
                continue
            for w in result.warnings:
                if (app_name, w) not in self.warned:
                    self.warned.add((app_name, w))
                    log.info("%s/%s: %s", app_name, service, w)
            for name, text in result.files.items():
                out.setdefault(name, reconcile.desired_unit(name, text))
        return out

    # --- one pass ---------------------------------------------------------------------------------

    def reconcile(self) -> list[reconcile.Action]:
        desired = self.desired()
        observed = self.systemd.observe()
        actions = reconcile.plan(desired, observed)
        for a in actions:
            log.info("%s", a)
        # a mesh proxy waits for its port by itself: only containers wait for the stops
        errors = self.systemd.apply(actions, self.heartbeat, needs_stopped=lambda u: not mesh.is_mesh_unit(u))
        for e in errors:
            log.error("%s", e)
        if any(a.kind == "remove" for a in actions):
            self.forget_in_staged()
        return actions

    def forget_in_staged(self) -> None:
        """A deployment staged while a drain ran carries the units the drain then removed: they go
        from its /etc too (else its first boot would start them again)."""
        try:
            staged = tree.staged_unit_dir(self.config.unit_dir)
            gone = self.systemd.forget_in(staged) if staged is not None else []
        except (FusionError, OSError) as e:
            log.error("cannot update the staged deployment's units: %s", e)
            return
        if gone:
            log.info("removed from the staged deployment: %s", " ".join(gone))

    def wait_settled(self, seconds: float) -> None:
        """Wait (bounded) until no container unit is still activating/deactivating."""
        units = [container_unit(p.app, p.service, p.replica) for p in self.placements.values()]
        deadline = time.monotonic() + seconds
        while units and time.monotonic() < deadline:
            props = self.systemd.show(units)
            if not any(u.active in ("activating", "deactivating", "reloading") for u in props.values()):
                return
            time.sleep(0.5)

    def report(self, cleanup: bool = False) -> int:
        """Put the status of every placement whose report changed; with ``cleanup``, also delete
        reports of containers that are no longer placed here -- once their unit is down: until then
        the report stays, not ready (``deactivating``), so nothing routes to the container and a
        deploy that waits for it to go returns once its port is free. Returns how many keys changed."""
        units = {container_unit(p.app, p.service, p.replica): p for p in self.placements.values()}
        props = self.systemd.show(units)
        health = self.systemd.health() if any(u.active == "active" for u in props.values()) else {}
        written = 0
        current: set[str] = set()
        for unit, p in sorted(units.items()):
            app = self.specs.get((p.app, p.spec_revision))
            ports = published_ports(app, p.service) if app and p.service in app.services else []
            name = container_name(app, p.service, p.replica) if app else f"{p.app}-{p.service}-{p.replica}"
            status = container_status(
                p, props.get(unit), health.get(name), ports, self.config.address,
                self.messages.get((p.app, p.service, p.replica), ""),
            )
            key = self.keys.status(p.host, p.app, p.service, p.replica)
            current.add(key)
            if self.reported.get(key) == status:
                continue
            self.store.put(key, status.model_copy(update={"updated_at": time.time()}).to_json(), lease=self.lease)
            self.reported[key] = status
            written += 1
        if not cleanup:
            return written
        stale, _ = self.store.range(self.keys.status_prefix(self.config.host))
        for kv in stale:
            if kv.key in current:
                continue
            last = self.reported.get(kv.key)
            if last is not None and last.unit in self.systemd.stopping:
                if last.state != "deactivating":
                    last = last.model_copy(update={"state": "deactivating", "sub_state": "stop-sigterm"})
                    self.store.put(kv.key, last.model_copy(update={"updated_at": time.time()}).to_json(),
                                   lease=self.lease)
                    self.reported[kv.key] = last
                    written += 1
                continue
            self.store.delete(kv.key)
            self.reported.pop(kv.key, None)
            written += 1
        return written


def run_agent(config: AgentConfig, *, once: bool = False, max_seconds: float | None = None) -> int:
    """Register, reconcile, report; with ``once`` stop there, else follow the placements until
    SIGTERM (or ``max_seconds``)."""
    store = Store(EtcdConfig.parse(config.etcd), Keys(config.root))
    agent = Agent(config, store, Systemd(config.unit_dir))
    agent.acquire_lease()
    agent.check_health()  # before the first registration: a rollout must never see a stale "ok"
    agent.register()
    start = agent.load_placements()
    watch = None if once else store.watch(agent.keys.placements_prefix(config.host), start)
    logs_prefix = agent.keys.logs_prefix(config.host)
    logs_watch = None if once else store.watch(logs_prefix, start)
    logs = LogServer(store, agent.systemd, config.host)
    # other hosts' reports: where the services our containers depend on run (discovery)
    own_status = agent.keys.status_prefix(config.host)
    status_watch = None if once else store.watch(agent.keys.status_prefix(), start)
    tree_key = agent.keys.tree(config.host)
    # tree requests arrive in the placements' queue: the loop wakes for either at once
    tree_watch = None if once else store.watch(tree_key, start, into=watch)
    stopping: list[int] = []
    if not once:
        signal.signal(signal.SIGTERM, lambda sig, frame: stopping.append(sig))
        signal.signal(signal.SIGINT, lambda sig, frame: stopping.append(sig))
    if config.auto_update is not None and not once and Path("/run/ostree-booted").exists():
        s = config.auto_update
        agent.updater = autoupdate.AutoUpdater(s, config.host, lambda: agent.reboot())
        log.info("auto-update: on, FleetLock server %s (group %s), checking every %gs", s.url, s.group, s.interval)
    try:
        agent.follow_tree()
        actions = agent.reconcile()
        if once:
            agent.wait_settled(ONCE_SETTLE)
        agent.report(cleanup=True)
        log.info("reconciled %d placements: %d actions", len(agent.placements), len(actions))
        sd_notify(f"READY=1\nSTATUS={len(agent.placements)} containers")
        if once:
            return 0
        agent.auto_update()  # e.g. give back the slot taken before the reboot that started us
        logs.serve()  # requests that came before the watch
        assert watch is not None and logs_watch is not None
        wd = watchdog_interval()
        tick = min(x for x in (config.ttl / 3, config.refresh, wd) if x is not None)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        last_resync = last_health = time.monotonic()
        while not stopping and (deadline is None or time.monotonic() < deadline):
            try:
                events = watch.drain(tick)
                changed = agent.apply_events(events)
                agent.heartbeat()
                now = time.monotonic()
                if now - last_resync >= RESYNC:  # a safety net in case the watch stream broke
                    before = dict(agent.placements)
                    agent.load_placements()
                    changed += agent.placements != before
                    agent.register_if_changed()
                    last_resync = now
                # a request came or went (the agent's own chunks are deeper keys)
                if any("/" not in ev.kv.key[len(logs_prefix) :] for ev in logs_watch.drain(0)):
                    logs.serve()
                if now - last_health >= HEALTH_EVERY:
                    last_health = now
                    if agent.check_health():
                        agent.register_if_changed()
                    agent.auto_update()
                assert status_watch is not None
                if any(not ev.kv.key.startswith(own_status) for ev in status_watch.drain(0)):
                    routes = agent.routes
                    changed += agent.has_remote_dependencies() or agent.mesh_routes(store.statuses()) != routes
                if changed:
                    actions = agent.reconcile()
                    log.info("reconciled after a change: %d actions", len(actions))
                # after the reconcile: a deployment staged now merges an /etc whose units are current
                if any(ev.kv.key == tree_key for ev in events):
                    agent.follow_tree()
                # a removed container's report goes once its unit is down (reaped)
                agent.report(cleanup=bool(changed) or bool(agent.systemd.reap()))
            except StoreError as e:
                log.error("%s", e)
                time.sleep(min(tick, 2.0))
        sd_notify("STOPPING=1")
        return 0
    finally:
        logs.close()
        for w in (watch, logs_watch, status_watch, tree_watch):
            if w is not None:
                w.cancel()


def parse_args(argv: list[str] | None) -> tuple[AgentConfig, argparse.Namespace]:
    env: Mapping[str, str] = os.environ
    p = argparse.ArgumentParser(prog="fusion-agent", description="Fusion's host agent")
    p.add_argument("--etcd", default=env.get("FUSION_ETCD"), help="etcd URL(s) (FUSION_ETCD)")
    p.add_argument("--host", default=env.get("FUSION_HOST") or socket.gethostname(), help="this host's name")
    p.add_argument("--address", default=env.get("FUSION_ADDRESS"), help="address others reach this host at")
    p.add_argument("--root", default=env.get("FUSION_ROOT", "/fusion"), help="etcd key root")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="host lease TTL in seconds")
    p.add_argument("--unit-dir", default="/etc/systemd/system", help="where unit files are written")
    p.add_argument("--once", action="store_true", help="register, reconcile, report once and exit")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this long (tests)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if not args.etcd:
        p.error("no etcd: pass --etcd URL or set FUSION_ETCD")
    try:
        auto_update = autoupdate.settings_from_env(env)
    except FusionError as e:
        p.error(str(e))
    config = AgentConfig(
        etcd=args.etcd,
        host=args.host,
        address=args.address,
        root=args.root,
        ttl=args.ttl,
        unit_dir=Path(args.unit_dir),
        podman_args=default_podman_args(),
        auto_update=auto_update,
    )
    return config, args


def main(argv: list[str] | None = None) -> Any:
    config, args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(message)s",
    )
    try:
        return run_agent(config, once=args.once, max_seconds=args.max_seconds)
    except FusionError as e:
        log.error("%s%s", e, f" (hint: {e.hint})" if getattr(e, "hint", None) else "")
        sys.exit(getattr(e, "exit_code", 1))
