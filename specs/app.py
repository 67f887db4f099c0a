"""The normalized application model: the one shape every way in (Compose, geard, Quadlet, native JSON)
is turned into, and the one shape every other part of Fusion reads.

Pure values, no I/O. Every model is a frozen pydantic v2 model that rejects unknown fields.

Shape (field names follow the Compose Specification, normalized)::

    App(name, services: {name: Service}, volumes: {name: Volume}, networks: {name: Network})

    Service
      image                 str, required (Fusion does not build images)
      command, entrypoint   argv list or None (None = the image's own). Compose's string form is split
                            with POSIX shell rules (shlex), as docker compose does.
      environment           {VAR: value}. The env_file contents are merged in at load time (files first,
                            in order, then `environment` wins). A variable written without a value
                            (`- FOO` or `FOO:`) takes its value from the load-time environment, and is
                            left out when that has none (Compose's rule).
      env_file              the env files as written (for reference; already merged into environment)
      ports                 [Port(target, published|None, host_ip|None, protocol)]; published None
                            means "any free host port" (Compose's "80", geard's External 0). Port ranges
                            "8000-8001:80-81" are expanded into one Port per port.
      volumes               [Mount(type volume|bind|tmpfs, source, target, read_only, ...)]; the
                            service-level `tmpfs:` list is folded in as tmpfs mounts. A `volume` mount
                            with source None is an anonymous volume. Bind sources are absolute host
                            paths (the Compose loader resolves relative ones against the spec's dir).
      depends_on            {service: Dependency(condition, restart, required)}
      healthcheck           Healthcheck or None (None = whatever the image declares). `test` is argv
                            whose first item is "CMD" (exec) or "CMD-SHELL" (one shell string), exactly
                            Docker's form; Compose's plain string becomes ["CMD-SHELL", s]; ["NONE"]
                            and `disable: true` become disable=True with test None. Durations are float
                            seconds.
      restart               "no" | "always" | "on-failure" | "unless-stopped"; restart_max_retries from
                            "on-failure:N"
      stop_grace_period     float seconds (Compose default 10)
      stop_signal, user, working_dir, hostname   str or None (a signal name or number; user[:group];
                            an absolute path; a DNS host name)
      read_only, init       bool
      cap_add, cap_drop     [str], upper case, without the CAP_ prefix
      labels                {str: str}
      networks              {network: NetworkAttachment(aliases)}; empty means the app's default network
      deploy                Deploy(replicas, placement, resources, update_config, restart_policy, labels)
      x_fusion              FusionExt from the `x-fusion` key (min_available, links)

Values are checked where they are declared: image references, host names, signals, users,
capabilities, IP addresses, and paths (absolute, no control characters, no ':' or ',' since those
cannot be passed to the engine's -v/--mount syntax), so identifiers and paths never carry a newline.
Environment values, labels and command arguments may hold any text: units/ must quote or reject it.

Semantic rules (checked by `App` itself, see `App.problems()`): names are valid DNS labels and systemd
unit-name parts (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, at most 63 characters, no "..", not ending in "." or
"-"); depends_on names existing services and has no cycle; `x-fusion.links` name existing services
(a service may link to itself: links mean discovery, never start order); named volumes and networks
used by services are declared at the top level; no two published ports can collide on one host (same
protocol and port, and the same host IP or one of them the wildcard) -- across services that is always
an error, and a service with replicas > 1 and a fixed published port needs
`deploy.placement.max_replicas_per_node: 1`; `x-fusion.min_available` <= replicas.

Loaders build an `App` with `model_validate(data, context={DEFER_CHECKS: True})`, then call
`app.problems()` themselves so each problem can be given the file position of its key path. Code that
builds an `App` directly gets the checks on construction (a ValueError inside a ValidationError).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

#: Pass ``context={DEFER_CHECKS: True}`` to ``App.model_validate`` to skip the semantic checks
#: (the loader runs ``App.problems()`` itself to attach file positions).
DEFER_CHECKS = "fusion_defer_checks"

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
NAME_RULE = "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*, be at most 63 characters, and not contain '..' or end in '.' or '-'"

PortNumber = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(ge=0)]


def _checker(pattern: str, what: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"bad {what} {value!r}")
        return value

    return AfterValidator(check)


def _no_controls(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"control characters (such as a newline) are not allowed: {value!r}")
    return value


def _abs_path(value: str) -> str:
    _no_controls(value)
    if not value.startswith("/"):
        raise ValueError(f"bad path {value!r}: must be absolute")
    if ":" in value or "," in value:
        raise ValueError(f"bad path {value!r}: ':' and ',' cannot be passed to the container engine")
    return value


#: An image reference: [registry[:port]/]path[:tag][@digest]; no spaces or control characters.
ImageRef = Annotated[str, _checker(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*", "image reference")]
#: A host name made of DNS labels.
HostName = Annotated[
    str,
    _checker(
        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
        "host name",
    ),
]
#: A signal: SIGTERM, TERM, RTMIN+3 or a number.
Signal = Annotated[str, _checker(r"(SIG)?[A-Z][A-Z0-9+-]*|[0-9]{1,2}", "signal")]
#: user[:group], by name or number.
UserSpec = Annotated[str, _checker(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?", "user")]
#: A capability without the CAP_ prefix (or ALL).
Capability = Annotated[str, _checker(r"[A-Z][A-Z0-9_]*", "capability")]


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"bad host_ip {value!r}: expected an IP address") from None
    return value


#: An IPv4 or IPv6 address.
IPAddress = Annotated[str, AfterValidator(_ip)]
#: An absolute path (in the container, or a bind source on the host).
AbsPath = Annotated[str, AfterValidator(_abs_path)]
Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a service/volume/network/app name, or None if it can."""
    if not NAME_RE.match(name) or len(name) > 63 or ".." in name or name.endswith((".", "-")):
        return f"bad name {name!r}: {NAME_RULE}"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Port(_Model):
    """A published port. ``published`` None: any free host port. ``host_ip`` None: all addresses."""

    target: PortNumber
    published: PortNumber | None = None
    host_ip: IPAddress | None = None
    protocol: Literal["tcp", "udp"] = "tcp"


class Mount(_Model):
    """A mount into the container (Compose's long volume syntax, normalized)."""

    type: Literal["volume", "bind", "tmpfs"]
    #: volume: the volume's name (None: an anonymous volume); bind: an absolute host path; tmpfs: None
    source: str | None = None
    target: AbsPath
    read_only: bool = False
    #: bind: SELinux relabel ("z" shared, "Z" private), from the short syntax or `bind.selinux`
    selinux: Literal["z", "Z"] | None = None
    #: bind: propagation (rprivate, private, rshared, shared, rslave, slave)
    propagation: str | None = None
    #: bind: create the host path when missing (Compose's default: true)
    create_host_path: bool = True
    #: volume: do not copy the image's content into a new volume
    nocopy: bool = False
    #: tmpfs: size in bytes, mode as an integer (e.g. 0o1777)
    tmpfs_size: int | None = Field(default=None, gt=0)
    tmpfs_mode: int | None = Field(default=None, ge=0, le=0o7777)

    @model_validator(mode="after")
    def _source_fits_type(self) -> Mount:
        if self.type == "bind":
            if self.source is None:
                raise ValueError("a bind mount needs a source")
            _abs_path(self.source)
        elif self.type == "tmpfs" and self.source is not None:
            raise ValueError("a tmpfs mount has no source")
        elif self.source is not None and (why := name_problem(self.source)) is not None:
            raise ValueError(why.replace("bad name", "bad volume name"))
        return self


class Dependency(_Model):
    condition: Condition = "service_started"
    #: restart this service when the dependency is restarted (Compose `restart: true`)
    restart: bool = False
    #: False: a missing/failed dependency only warns (Compose `required: false`)
    required: bool = True


class Healthcheck(_Model):
    """Docker's health check. Defaults are Docker's: 30s interval and timeout, 3 retries.
    ``test`` None with ``disable`` False: the image's own check, with these timings."""

    test: list[str] | None = None
    interval: Seconds = 30.0
    timeout: Seconds = 30.0
    retries: int = Field(default=3, ge=0)
    start_period: Seconds = 0.0
    start_interval: Seconds = 5.0
    disable: bool = False

    @model_validator(mode="after")
    def _test_form(self) -> Healthcheck:
        if self.test is not None:
            if not self.test or self.test[0] not in ("CMD", "CMD-SHELL"):
                raise ValueError('test must be ["CMD", arg...] or ["CMD-SHELL", "command"]')
            if len(self.test) < 2:
                raise ValueError("test has no command")
            if self.test[0] == "CMD-SHELL" and len(self.test) != 2:
                raise ValueError('CMD-SHELL takes exactly one string: ["CMD-SHELL", "command"]')
        return self


class Constraint(_Model):
    """A placement constraint: ``node.hostname==h1`` or ``node.labels.zone!=b``."""

    label: str
    op: Literal["==", "!="]
    value: str

    @model_validator(mode="after")
    def _known_label(self) -> Constraint:
        if self.label != "node.hostname" and not (
            self.label.startswith("node.labels.") and len(self.label) > len("node.labels.")
        ):
            raise ValueError(
                f"unsupported constraint attribute {self.label!r}: use node.hostname or node.labels.KEY"
            )
        return self

    def matches(self, hostname: str, labels: Mapping[str, str]) -> bool:
        """Whether a host with this name and these labels satisfies the constraint."""
        if self.label == "node.hostname":
            actual: str | None = hostname
        else:
            actual = labels.get(self.label.removeprefix("node.labels."))
        equal = actual == self.value
        return equal if self.op == "==" else not equal

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


class Placement(_Model):
    constraints: list[Constraint] = []
    max_replicas_per_node: int | None = Field(default=None, ge=1)

    def allows(self, hostname: str, labels: Mapping[str, str]) -> bool:
        """Whether every constraint accepts a host with this name and these labels."""
        return all(c.matches(hostname, labels) for c in self.constraints)


class ResourceSpec(_Model):
    cpus: float | None = Field(default=None, gt=0)
    #: bytes
    memory: int | None = Field(default=None, gt=0)
    pids: int | None = Field(default=None, gt=0)


class Resources(_Model):
    limits: ResourceSpec = ResourceSpec()
    reservations: ResourceSpec = ResourceSpec()


class UpdateConfig(_Model):
    """How a rolling update replaces replicas (Docker's defaults)."""

    parallelism: int = Field(default=1, ge=0)
    delay: Seconds = 0.0
    order: Literal["stop-first", "start-first"] = "stop-first"
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    monitor: Seconds = 5.0
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)


class RestartPolicy(_Model):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Seconds = 5.0
    max_attempts: int | None = Field(default=None, ge=0)
    window: Seconds | None = None


class Deploy(_Model):
    replicas: int = Field(default=1, ge=0)
    placement: Placement = Placement()
    resources: Resources = Resources()
    update_config: UpdateConfig = UpdateConfig()
    restart_policy: RestartPolicy | None = None
    labels: dict[str, str] = {}


class Link(_Model):
    """A discovery link (geard): make ``to``'s ports reachable/known from this service.
    Never implies start order; a service may link to itself."""

    to: str
    #: container ports of ``to`` to expose to this service; empty means all its ports
    ports: list[PortNumber] = []


class FusionExt(_Model):
    """What Compose lacks, from a service's ``x-fusion`` key."""

    #: disruption budget: replicas that must stay healthy during drains and rolling upgrades
    min_available: int = Field(default=0, ge=0)
    links: list[Link] = []


class NetworkAttachment(_Model):
    aliases: list[str] = []


class Service(_Model):
    image: ImageRef
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = {}
    env_file: list[str] = []
    ports: list[Port] = []
    volumes: list[Mount] = []
    depends_on: dict[str, Dependency] = {}
    healthcheck: Healthcheck | None = None
    restart: Literal["no", "always", "on-failure", "unless-stopped"] = "no"
    restart_max_retries: int | None = Field(default=None, ge=0)
    stop_grace_period: Seconds = 10.0
    stop_signal: Signal | None = None
    user: UserSpec | None = None
    working_dir: AbsPath | None = None
    hostname: HostName | None = None
    read_only: bool = False
    init: bool = False
    cap_add: list[Capability] = []
    cap_drop: list[Capability] = []
    labels: dict[str, str] = {}
    networks: dict[str, NetworkAttachment] = {}
    deploy: Deploy = Deploy()
    x_fusion: FusionExt = FusionExt()


class Volume(_Model):
    """A top-level named volume. ``name``: the engine-level name when it differs from the key."""

    driver: str | None = None
    driver_opts: dict[str, str] = {}
    labels: dict[str, str] = {}
    external: bool = False
    name: str | None = None


class Network(_Model):
    driver: str | None = None
    driver_opts: dict[str, str] = {}
    labels: dict[str, str] = {}
    external: bool = False
    internal: bool = False
    enable_ipv6: bool = False
    name: str | None = None


def format_path(loc: tuple[str | int, ...]) -> str:
    """``("services", "web", "ports", 1)`` -> ``services.web.ports[1]``."""
    out = ""
    for k in loc:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += f".{k}" if out else k
    return out


class Problem(_Model):
    """A semantic problem: where (``loc``, e.g. ``("services", "web", "depends_on", "db")``, in the
    Compose spelling: ``x-fusion``) and what is wrong."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def path(self) -> str:
        return format_path(self.loc)


class App(_Model):
    name: str
    services: dict[str, Service] = {}
    volumes: dict[str, Volume] = {}
    networks: dict[str, Network] = {}

    @model_validator(mode="after")
    def _semantic_checks(self, info: ValidationInfo) -> App:
        if isinstance(info.context, Mapping) and info.context.get(DEFER_CHECKS):
            return self
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{p.path}: {p.message}" for p in problems))
        return self

    # -- queries -------------------------------------------------------------------------------

    def dependency_cycle(self) -> list[str] | None:
        """One depends_on cycle as ``[a, b, ..., a]`` (deterministic), or None."""
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        stack: list[str] = []

        def visit(name: str) -> list[str] | None:
            state[name] = 1
            stack.append(name)
            for dep in sorted(self.services[name].depends_on):
                if dep not in self.services:
                    continue
                if state.get(dep) == 1:
                    return stack[stack.index(dep) :] + [dep]
                if dep not in state and (found := visit(dep)) is not None:
                    return found
            stack.pop()
            state[name] = 2
            return None

        for name in sorted(self.services):
            if name not in state and (found := visit(name)) is not None:
                return found
        return None

    def service_order(self) -> list[str]:
        """Service names, every service after the ones it depends on; ties broken by name.
        Raises ValueError on a cycle (a checked App has none)."""
        cycle = self.dependency_cycle()
        if cycle:
            raise ValueError("dependency cycle: " + " -> ".join(cycle))
        done: list[str] = []
        seen: set[str] = set()
        remaining = sorted(self.services)
        while remaining:
            ready = [
                n
                for n in remaining
                if all(d in seen or d not in self.services for d in self.services[n].depends_on)
            ]
            done.extend(ready)
            seen.update(ready)
            remaining = [n for n in remaining if n not in seen]
        return done

    def dependents(self, name: str) -> list[str]:
        """Services that depend on ``name`` (directly), sorted."""
        return sorted(s for s, svc in self.services.items() if name in svc.depends_on)

    # -- checks --------------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Every semantic problem, in a stable order (see the module docstring for the rules)."""
        out: list[Problem] = []

        def add(loc: tuple[str | int, ...], message: str) -> None:
            out.append(Problem(loc=loc, message=message))

        if (why := name_problem(self.name)) is not None:
            add(("name",), why)
        for kind, names in (
            ("services", self.services),
            ("volumes", self.volumes),
            ("networks", self.networks),
        ):
            folded: dict[str, str] = {}
            for n in names:
                if (why := name_problem(n)) is not None:
                    add((kind, n), why)
                elif n.lower() in folded:
                    add(
                        (kind, n),
                        f"{n!r} and {folded[n.lower()]!r} differ only in case (DNS names ignore case)",
                    )
                folded.setdefault(n.lower(), n)

        for sname, svc in self.services.items():
            base = ("services", sname)
            for dep in svc.depends_on:
                if dep not in self.services:
                    add((*base, "depends_on", dep), f"depends on unknown service {dep!r}")
            for i, link in enumerate(svc.x_fusion.links):
                if link.to not in self.services:
                    add((*base, "x-fusion", "links", i), f"links to unknown service {link.to!r}")
            for i, m in enumerate(svc.volumes):
                if m.type == "volume" and m.source is not None and m.source not in self.volumes:
                    add((*base, "volumes", i), f"volume {m.source!r} is not declared under top-level volumes")
            for net in svc.networks:
                if net not in self.networks:
                    add((*base, "networks", net), f"network {net!r} is not declared under top-level networks")
            if svc.x_fusion.min_available > svc.deploy.replicas:
                add(
                    (*base, "x-fusion", "min_available"),
                    f"min_available {svc.x_fusion.min_available} is more than replicas {svc.deploy.replicas}",
                )
            fixed = [(i, p) for i, p in enumerate(svc.ports) if p.published is not None]
            if fixed and svc.deploy.replicas > 1 and svc.deploy.placement.max_replicas_per_node != 1:
                i, p = fixed[0]
                add(
                    (*base, "ports", i),
                    f"published port {p.published} with {svc.deploy.replicas} replicas: two replicas on one host "
                    "would collide; set deploy.placement.max_replicas_per_node: 1 or leave the host port out",
                )

        cycle = self.dependency_cycle()
        if cycle:
            add(("services", cycle[0], "depends_on", cycle[1]), "dependency cycle: " + " -> ".join(cycle))

        seen: list[tuple[str, int, Port]] = []
        for sname, svc in self.services.items():
            for i, p in enumerate(svc.ports):
                if p.published is None:
                    continue
                for other_name, _, q in seen:
                    if _ports_collide(p, q):
                        add(
                            ("services", sname, "ports", i),
                            f"host port {p.published}/{p.protocol} is already published"
                            + (" by this service" if other_name == sname else f" by service {other_name!r}"),
                        )
                        break
                seen.append((sname, i, p))
        return out


def _ports_collide(a: Port, b: Port) -> bool:
    wild = (None, "0.0.0.0", "::", "")
    return (
        a.published == b.published
        and a.protocol == b.protocol
        and (a.host_ip == b.host_ip or a.host_ip in wild or b.host_ip in wild)
    )
