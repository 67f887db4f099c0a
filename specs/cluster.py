"""The cluster's wire format: etcd key layout and the JSON values stored there.

Shared by the orchestrator (which decides) and the host agent (which obeys and reports); neither
imports the other, both import this. Pure values, no I/O.

Key layout (``root`` is ``/fusion`` unless a test picks its own; ``<n>`` is the 1-based replica
number; ``<rev>`` is zero-padded to 8 digits so keys sort in revision order)::

    <root>/apps/<app>/spec/<rev>          SpecRevision   every spec ever deployed; never deleted (history,
                                                         rollback; `fusion rm` keeps them too)
    <root>/apps/<app>/current             AppCurrent     which revision is live + a generation counter
                                                         that every placement decision for the app bumps;
                                                         decisions compare its mod_revision (optimistic
                                                         concurrency). Absent: the app is not deployed.
                                                         ``updating_until``: a deploy is under way (the
                                                         controller then removes nothing of the app).
    <root>/placements/<host>/<app>/<service>/<n>
                                          PlacementRecord "run replica n of app/service on host, as in spec
                                                         revision r". Written by the orchestrator only.
                                                         The agent of <host> watches <root>/placements/<host>/.
    <root>/hosts/<host>                   HostRecord     registration, written by the agent under its lease
                                                         (TTL ~10 s, kept alive); gone = host lost.
    <root>/status/<host>/<app>/<service>/<n>
                                          ContainerStatus the agent's report for one container, under the same
                                                         lease (so it vanishes with the host). Also the
                                                         source of service discovery: every agent may read
                                                         <root>/status/ to learn where an app's services
                                                         run (host address + published ports).
    <root>/cordon/<host>                  CordonRecord   present = no new placements on the host (kept
                                                         apart from the registration so a restarting agent
                                                         cannot clear it).
    <root>/logs/<host>/<id>               LogRequest     `fusion logs` asks <host>'s agent for journal lines
                                                         (under the CLI's lease: when the CLI goes, so does
                                                         the request).
    <root>/logs/<host>/<id>/<seq>         LogChunk       the agent's answer, in order, attached to the lease
                                                         named in the request; the last chunk has done=true
                                                         (never, while following).
    <root>/rollouts/<id>/...              (issue 6) the rolling-upgrade state machine
                                                         (``rollouts/<id>/state``: the JSON of
                                                         ``orchestrator.upgrade.machine.RolloutState``)
    <root>/slots/<n>                      SlotRecord     (issue 6) reboot slot n (0-based, < the slot count):
                                                         who holds it and why; no lease (released explicitly
                                                         by its rollout or FleetLock client, never expires)
    <root>/trees/<host>                   TreeRequest    (issue 6) the OS tree the host's agent must fetch,
                                                         stage as the next boot's default, or boot (reboot
                                                         into). Written by the rollout; the agent obeys and
                                                         reports in HostRecord.tree / .health.

The agent's side of the contract (fusion-agent on host H):

1. Grant a lease (TTL ``HostRecord.lease_ttl``), put ``hosts/H`` under it, keep it alive; put it
   again when labels, capacity or the booted tree change.
2. Range ``placements/H/`` (note the header revision R), then watch it from R+1. For each
   PlacementRecord read ``apps/<app>/spec/<spec_revision>`` (immutable: cache it), take
   ``services[<service>]`` (a ``specs.app.Service``) and run replica n as a unit. A PUT whose
   ``service_hash`` equals what runs changes nothing; a different hash means replace the
   container in place (the orchestrator makes a start-first update start-first: it places an extra
   replica first and removes it when the update is done). A DELETE means stop the unit and delete its
   ``status/H/...`` key. On start, reconcile against what already runs without restarting it.
3. Put ``status/H/<app>/<service>/<n>`` (ContainerStatus, under the host lease) whenever state,
   health or ports change, always carrying the placement's ``service_hash`` and ``spec_revision``
   (the orchestrator waits for exactly that hash to be ``active`` and healthy).
4. Watch ``trees/H``: fetch the requested commit, stage it as the default deployment, and for
   ``boot`` reboot into it -- at most once per request (``by``, ``checksum``): a host that came back
   on anything else stays there and reports it. Run the host's health checks and report them in
   ``HostRecord.health``.
5. Watch ``logs/H/``: for a new LogRequest, put LogChunk values at ``logs/H/<id>/<seq>`` under the
   request's ``lease`` (last one ``done: true``; while ``follow``, keep going until the request key
   disappears).

Service discovery reads the status records: :func:`endpoints` lists the ready replicas of each
service of an app with their host's address and published ports.

All values are JSON objects (UTF-8), exactly the pydantic models below (``model_dump_json()``), so
unknown fields are rejected on both sides. Times are seconds since the epoch (float).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_ROOT = "/fusion"
REV_DIGITS = 8


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# --- keys -----------------------------------------------------------------------------------------


class Keys:
    """Builds (and parses) every key of the layout above, under one root."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root.rstrip("/")

    # prefixes (always ending in "/")
    def apps_prefix(self) -> str:
        return f"{self.root}/apps/"

    def app_prefix(self, app: str) -> str:
        return f"{self.root}/apps/{app}/"

    def specs_prefix(self, app: str) -> str:
        return f"{self.root}/apps/{app}/spec/"

    def placements_prefix(self, host: str | None = None) -> str:
        return f"{self.root}/placements/" + (f"{host}/" if host is not None else "")

    def hosts_prefix(self) -> str:
        return f"{self.root}/hosts/"

    def status_prefix(self, host: str | None = None) -> str:
        return f"{self.root}/status/" + (f"{host}/" if host is not None else "")

    def cordon_prefix(self) -> str:
        return f"{self.root}/cordon/"

    def logs_prefix(self, host: str) -> str:
        return f"{self.root}/logs/{host}/"

    def rollouts_prefix(self) -> str:
        return f"{self.root}/rollouts/"

    def slots_prefix(self) -> str:
        return f"{self.root}/slots/"

    def trees_prefix(self) -> str:
        return f"{self.root}/trees/"

    # keys
    def spec(self, app: str, revision: int) -> str:
        return f"{self.specs_prefix(app)}{revision:0{REV_DIGITS}d}"

    def current(self, app: str) -> str:
        return f"{self.root}/apps/{app}/current"

    def placement(self, host: str, app: str, service: str, replica: int) -> str:
        return f"{self.root}/placements/{host}/{app}/{service}/{replica}"

    def host(self, host: str) -> str:
        return f"{self.root}/hosts/{host}"

    def status(self, host: str, app: str, service: str, replica: int) -> str:
        return f"{self.root}/status/{host}/{app}/{service}/{replica}"

    def cordon(self, host: str) -> str:
        return f"{self.root}/cordon/{host}"

    def tree(self, host: str) -> str:
        return f"{self.root}/trees/{host}"

    def log_request(self, host: str, request_id: str) -> str:
        return f"{self.root}/logs/{host}/{request_id}"

    def log_chunk(self, host: str, request_id: str, seq: int) -> str:
        return f"{self.root}/logs/{host}/{request_id}/{seq:0{REV_DIGITS}d}"

    # parsing
    def parse_container_key(self, key: str) -> tuple[str, str, str, int]:
        """``<root>/placements|status/<host>/<app>/<service>/<n>`` -> (host, app, service, n)."""
        parts = key[len(self.root) + 1 :].split("/")
        if len(parts) != 5 or parts[0] not in ("placements", "status"):
            raise ValueError(f"not a placement or status key: {key!r}")
        return parts[1], parts[2], parts[3], int(parts[4])


def container_unit(app: str, service: str, replica: int) -> str:
    """The systemd unit an agent runs a container as: Compose's container name ``APP-SERVICE-N``
    (what units.render names it) plus ``.service``. ``ContainerStatus.unit`` is what the agent reports."""
    return f"{app}-{service}-{replica}.service"


# --- values ---------------------------------------------------------------------------------------


class Capacity(_Record):
    """What a host offers to containers. None: not known (treated as unlimited)."""

    cpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0)  # bytes


class TreeState(_Record):
    """The host's OSTree deployments, as the agent sees them (checksums are commit ids)."""

    osname: str | None = None
    booted: str | None = None
    booted_version: str | None = None
    staged: str | None = None  # pending deployment for the next boot, if any
    rollback: str | None = None
    fetched: str | None = None  # the commit of the host's TreeRequest, once it is in the host's repo
    origin: str | None = None  # the booted deployment's refspec, "remote:ref"
    remote_url: str | None = None  # where that remote is (what `fusion upgrade --version` resolves against)


class HostHealth(_Record):
    """The host's own health checks (executables in ``/usr/lib/fusion/health.d`` and
    ``/etc/fusion/health.d``, greenboot-style: every one must exit 0)."""

    ok: bool = True
    failed: tuple[str, ...] = ()  # "NAME: last line of its output"
    checked_at: float = 0.0


class HostRecord(_Record):
    """``<root>/hosts/<host>``: written by the agent at start and on change, under its lease."""

    name: str
    address: str | None = None  # where other hosts and clients reach its published ports
    labels: dict[str, str] = {}
    capacity: Capacity = Capacity()
    tree: TreeState = TreeState()
    health: HostHealth = HostHealth()
    agent_version: str = ""
    started_at: float = 0.0  # when this agent process started
    lease_ttl: int = 10


class SpecRevision(_Record):
    """``<root>/apps/<app>/spec/<rev>``: one deployed spec, immutable once written."""

    revision: int = Field(ge=1)
    app: dict[str, Any]  # specs.app.App, model_dump(mode="json")
    created_at: float
    note: str = ""  # "deploy guestbook.yaml", "scale web=3", "rollback to 2"


class AppCurrent(_Record):
    """``<root>/apps/<app>/current``."""

    revision: int = Field(ge=1)
    generation: int = Field(ge=1)  # bumped by every placement decision for this app
    updated_at: float
    note: str = ""
    previous: int | None = None  # the revision that was live before (what `fusion rollback` returns to)
    # a deploy is under way until then (epoch seconds): the controller re-places the replicas of a
    # lost host but removes nothing (not a start-first replica, nor the old one of a move)
    updating_until: float | None = None

    def bumped(self, note: str, at: float) -> AppCurrent:
        """The record after one more placement decision on the same revision (a drain, a re-placement)."""
        return self.model_copy(update={"generation": self.generation + 1, "updated_at": at, "note": note})


class PlacementRecord(_Record):
    """``<root>/placements/<host>/<app>/<service>/<n>``: the agent runs this container.

    The agent reads the service's definition from ``SpecRevision`` ``spec_revision`` (immutable, so it
    may cache it). ``service_hash`` changes exactly when the service's definition changes: the agent
    restarts a container whose hash changed and leaves alone one whose hash did not.
    ``order`` is the service's update order ("stop-first"/"start-first"), for information: the
    orchestrator carries it out (extra replicas, moves that start before they stop).
    """

    app: str
    service: str
    replica: int = Field(ge=1)
    host: str
    spec_revision: int = Field(ge=1)
    service_hash: str
    order: Literal["stop-first", "start-first"] = "stop-first"


UnitState = Literal["active", "activating", "deactivating", "inactive", "failed", "reloading", "unknown"]
Health = Literal["healthy", "unhealthy", "starting", "none"]


class PublishedPort(_Record):
    container_port: int
    host_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str | None = None


class ContainerStatus(_Record):
    """``<root>/status/<host>/<app>/<service>/<n>``: the agent's report on one container.

    ``state``/``sub_state`` are the unit's systemd ActiveState/SubState; ``health`` is the container's
    health check result ("none" when it has no check). ``service_hash`` is the placement the agent
    is running, so the orchestrator knows when an update has landed.
    """

    app: str
    service: str
    replica: int = Field(ge=1)
    host: str
    unit: str
    spec_revision: int = Field(ge=1)
    service_hash: str
    state: UnitState = "unknown"
    sub_state: str = ""
    health: Health = "none"
    address: str | None = None
    ports: list[PublishedPort] = []
    restarts: int = 0
    message: str = ""  # why it is not running, in a person's words
    updated_at: float = 0.0

    @property
    def ready(self) -> bool:
        return self.state == "active" and self.health in ("healthy", "none")


class CordonRecord(_Record):
    """``<root>/cordon/<host>``."""

    reason: str = ""
    by: str = "cli"  # "cli" or the id of the rollout that cordoned it
    at: float = 0.0


class LogRequest(_Record):
    """``<root>/logs/<host>/<id>``: print journal lines of one container unit."""

    unit: str
    lines: int = Field(default=100, ge=0)
    follow: bool = False
    lease: int  # attach the LogChunk keys to this lease


class LogChunk(_Record):
    """``<root>/logs/<host>/<id>/<seq>``."""

    lines: list[str] = []
    done: bool = False
    error: str | None = None


# --- service discovery (pure) -------------------------------------------------------------------


class Endpoint(_Record):
    """Where one ready replica of a service can be reached: its host's address and published ports."""

    service: str
    replica: int
    host: str
    address: str | None
    ports: list[PublishedPort] = []


def endpoints(statuses: list[ContainerStatus], app: str) -> dict[str, list[Endpoint]]:
    """The ready replicas of each service of ``app``, from the agents' reports (``<root>/status/``),
    sorted by replica then host. What an agent needs to point a container at the services it
    depends on (environment, /etc/hosts entries or a local proxy)."""
    out: dict[str, list[Endpoint]] = {}
    for s in sorted(statuses, key=lambda s: (s.service, s.replica, s.host)):
        if s.app != app or not s.ready:
            continue
        out.setdefault(s.service, []).append(
            Endpoint(service=s.service, replica=s.replica, host=s.host, address=s.address, ports=list(s.ports))
        )
    return out


# --- rolling upgrades (issue 6) -------------------------------------------------------------------


class SlotRecord(_Record):
    """``<root>/slots/<n>``: a reboot slot is held. ``holder`` is the host (or FleetLock client id)
    that may reboot; ``owner`` the rollout that took it (None: a FleetLock client holds it itself)."""

    holder: str
    reason: str = ""
    owner: str | None = None
    group: str = "default"  # FleetLock group
    at: float = 0.0


class TreeRequest(_Record):
    """``<root>/trees/<host>``: what the host's agent must do with its OS tree.

    ``fetch``: have ``checksum`` in the repo (no other effect). ``stage``: also make it the default
    deployment (the next boot's). ``boot``: also reboot into it unless it is booted -- once per
    (``by``, ``checksum``), so a host that fell back (boot counting) is not rebooted again."""

    checksum: str
    action: Literal["fetch", "stage", "boot"]
    by: str = ""  # the rollout (or person) that asked
    at: float = 0.0
