"""Commands that `orchestrator/` adds to `fusion`: the cluster CLI.

deploy, ps, logs, scale, rm, hosts, history, rollback, cordon, uncordon, reconcile.
Each takes ``--etcd URL[,URL...]`` (or ``FUSION_ETCD``) with optional TLS client certificates; with
none, the cluster chosen with ``etcd_local.use_cluster`` (``fusion lab up`` does that) is used, else
a local etcd is started (or reused) in the state directory (see ``orchestrator.etcd_local``).
Side effects: terminal output and everything ``orchestrator.ops`` does. No logic of its own beyond
parsing arguments and rendering.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from common.store import EtcdConfig, Store
from orchestrator import etcd_local, ops
from orchestrator import logs as logs_
from orchestrator import reconcile as reconcile_
from orchestrator.deploy import AppPlan, plan_app
from specs.cluster import DEFAULT_ROOT, ContainerStatus, Keys, PlacementRecord
from specs.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


# --- connecting -----------------------------------------------------------------------------------


def etcd_options(f: F) -> F:
    """``--etcd``, the TLS files and (hidden) the key root; the command gets ``store: Store``."""

    @click.option("--etcd", "etcd_urls", envvar="FUSION_ETCD", metavar="URL[,URL...]",
                  help="etcd endpoints (env FUSION_ETCD). Default: the lab's if one is up, else a local etcd "
                       "in the state directory.")
    @click.option("--etcd-ca", envvar="FUSION_ETCD_CA", type=click.Path(exists=True, dir_okay=False),
                  help="CA bundle for https endpoints (env FUSION_ETCD_CA).")
    @click.option("--etcd-cert", envvar="FUSION_ETCD_CERT", type=click.Path(exists=True, dir_okay=False),
                  help="Client certificate (env FUSION_ETCD_CERT).")
    @click.option("--etcd-key", envvar="FUSION_ETCD_KEY", type=click.Path(exists=True, dir_okay=False),
                  help="Client certificate's key (env FUSION_ETCD_KEY).")
    @click.option("--etcd-max-txn-ops", envvar="FUSION_ETCD_MAX_TXN_OPS", type=int, default=20000, hidden=True)
    @click.option("--etcd-root", envvar="FUSION_ETCD_ROOT", default=DEFAULT_ROOT, hidden=True)
    @functools.wraps(f)
    def wrapper(etcd_urls: str | None, etcd_ca: str | None, etcd_cert: str | None, etcd_key: str | None,
                etcd_max_txn_ops: int, etcd_root: str, **kw: Any) -> Any:
        if (etcd_cert is None) != (etcd_key is None):
            raise InputError("--etcd-cert and --etcd-key go together")
        chosen = None if etcd_urls else etcd_local.chosen_cluster()
        if etcd_urls:
            config = EtcdConfig.parse(etcd_urls, ca_cert=etcd_ca, cert=etcd_cert, key=etcd_key,
                                      max_txn_ops=etcd_max_txn_ops)
        elif chosen is not None:  # e.g. `fusion lab up` chose its etcd
            config = EtcdConfig.parse(chosen.endpoints, ca_cert=chosen.ca_cert, cert=chosen.cert, key=chosen.key,
                                      max_txn_ops=etcd_max_txn_ops)
        else:
            local = etcd_local.ensure()
            config = EtcdConfig((local.endpoint,), max_txn_ops=local.max_txn_ops)
        return f(store=Store(config, Keys(etcd_root)), **kw)

    return wrapper  # type: ignore[return-value]


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _progress() -> ops.Progress:
    last: list[tuple[int, int, int]] = []

    def show(state: ops.WaitState) -> None:
        key = (len(state.ready()), len(state.targets), len(state.stopping()))
        if last and last[-1] == key:
            return
        last.append(key)
        pending = [state.why_not(s) for s in sorted(state.targets) if s not in state.ready()]
        line = f"  {key[0]}/{key[1]} running and healthy"
        if pending:
            line += f" (waiting for {pending[0]}" + (f" and {len(pending) - 1} more)" if len(pending) > 1 else ")")
        elif key[2]:
            line += f" ({key[2]} removed still stopping)"
        click.echo(line, err=True)

    return show


def _show_plan(ap: AppPlan) -> None:
    click.echo(f"{ap.app.name}: {ap.plan.summary()}")
    for line in ap.lines():
        click.echo(f"  {line}")


def _wait_options(no_wait: bool, timeout: float) -> ops.WaitOptions | None:
    return None if no_wait else ops.WaitOptions(timeout=timeout, progress=_progress())


def _report(report: ops.DeployReport, waited: bool) -> None:
    if report.revision is None:
        click.echo(f"{report.app}: nothing to change")
        return
    state = "running and healthy" if waited else "written; hosts are applying it (--no-wait)"
    click.echo(f"{report.app}: revision {report.revision} {state}")


wait_options = [
    click.option("--no-wait", is_flag=True, help="Return once the decision is written."),
    click.option("--timeout", type=float, default=300.0, show_default=True,
                 help="Seconds to wait for the containers to be running and healthy."),
]


def with_wait(f: F) -> F:
    for opt in reversed(wait_options):
        f = opt(f)
    return f


# --- commands -------------------------------------------------------------------------------------


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@with_wait
@etcd_options
def deploy(store: Store, spec: str, dry_run: bool, no_wait: bool, timeout: float) -> None:
    """Deploy (or update) the app in SPEC across the cluster and wait until it is healthy.

    Shows the diff (+ create, ~ update in place, > move, - remove). Updates roll out per the
    services' update_config: PARALLELISM replicas at a time, each batch healthy before the next,
    and failure_action=rollback returns the app to its previous revision. With --no-wait every
    change is written at once."""
    from specs import load_app

    app = load_app(spec)
    if dry_run:
        _show_plan(plan_app(ops.read_view(store), app))
        return
    report = ops.deploy(store, app, note=f"deploy {spec}", wait=_wait_options(no_wait, timeout), on_plan=_show_plan)
    _report(report, not no_wait)


def _container_rows(records: list[PlacementRecord], statuses: list[ContainerStatus]) -> list[dict[str, Any]]:
    by_key = {(s.host, s.app, s.service, s.replica): s for s in statuses}
    rows = []
    for r in sorted(records, key=lambda r: (r.app, r.service, r.replica, r.host)):
        s = by_key.pop((r.host, r.app, r.service, r.replica), None)
        current = s is not None and s.service_hash == r.service_hash
        rows.append({
            "app": r.app, "service": r.service, "replica": r.replica, "host": r.host,
            "unit": s.unit if s else "", "state": (s.state if current else "pending") if s else "pending",
            "sub_state": s.sub_state if s and current else "", "health": s.health if s and current else "",
            "ports": [p.model_dump() for p in s.ports] if s else [], "spec_revision": r.spec_revision,
            "message": s.message if s else "", "placed": True,
        })
    for (host, app, service, n), s in sorted(by_key.items()):
        rows.append({"app": app, "service": service, "replica": n, "host": host, "unit": s.unit,
                     "state": s.state, "sub_state": s.sub_state, "health": s.health,
                     "ports": [p.model_dump() for p in s.ports], "spec_revision": s.spec_revision,
                     "message": "no longer placed here; the agent is stopping it", "placed": False})
    return rows


def _ports(ports: list[dict[str, Any]]) -> str:
    return ",".join(f"{p['host_ip'] + ':' if p['host_ip'] else ''}{p['host_port']}->{p['container_port']}/{p['protocol']}"
                    for p in ports)


@click.command()
@click.argument("app", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@etcd_options
def ps(store: Store, app: str | None, as_json: bool) -> None:
    """Every container of APP (or of every app): host, unit, state, health, ports."""
    if app is not None:
        ops.live_app(store, app)
    rows = _container_rows(store.placements(app=app), store.statuses(app=app))
    if as_json:
        _json(rows)
        return
    _table(["CONTAINER", "HOST", "UNIT", "STATE", "HEALTH", "PORTS", "REV"],
           [[f"{r['app']}/{r['service']}/{r['replica']}", r["host"], r["unit"],
             r["state"] + (f"/{r['sub_state']}" if r["sub_state"] else ""), r["health"], _ports(r["ports"]),
             str(r["spec_revision"])] for r in rows])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@etcd_options
def hosts(store: Store, as_json: bool) -> None:
    """The cluster's hosts: registration, cordon, labels, capacity, tree, containers."""
    registered = {h.name: h for h in store.hosts()}
    cordons = store.cordons()
    count: dict[str, int] = {}
    for r in store.placements():
        count[r.host] = count.get(r.host, 0) + 1
    rows: list[dict[str, Any]] = []
    for name in sorted(set(registered) | set(cordons) | set(count)):
        h = registered.get(name)
        status = "down" if h is None else "ready"
        if name in cordons:
            status += ",cordoned"
        rows.append({
            "name": name, "status": status, "registered": h is not None, "cordoned": name in cordons,
            "cordon_reason": cordons[name].reason if name in cordons else None,
            "address": h.address if h else None, "labels": h.labels if h else {},
            "capacity": h.capacity.model_dump() if h else None, "tree": h.tree.model_dump() if h else None,
            "containers": count.get(name, 0),
        })
    if as_json:
        _json(rows)
        return
    _table(["HOST", "STATUS", "ADDRESS", "LABELS", "CPUS", "MEMORY", "TREE", "CONTAINERS"],
           [[r["name"], r["status"], r["address"] or "",
             ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
             "" if not r["capacity"] or r["capacity"]["cpus"] is None else f"{r['capacity']['cpus']:g}",
             "" if not r["capacity"] or r["capacity"]["memory"] is None else f"{r['capacity']['memory'] >> 20}M",
             (r["tree"] or {}).get("booted_version") or ((r["tree"] or {}).get("booted") or "")[:12],
             str(r["containers"])] for r in rows])


SCALE_RE = re.compile(r"^([^/=]+)/([^/=]+)=(\d+)$")


@click.command()
@click.argument("assignments", nargs=-1, required=True, metavar="APP/SERVICE=N...")
@with_wait
@etcd_options
def scale(store: Store, assignments: tuple[str, ...], no_wait: bool, timeout: float) -> None:
    """Set the number of replicas of services (a new spec revision each)."""
    parsed = []
    for a in assignments:
        m = SCALE_RE.match(a)
        if not m:
            raise InputError(f"cannot read {a!r}", hint="write APP/SERVICE=N, e.g. guestbook/web=3")
        parsed.append((m.group(1), m.group(2), int(m.group(3))))
    for app, service, n in parsed:
        report = ops.scale(store, app, service, n, wait=_wait_options(no_wait, timeout), on_plan=_show_plan)
        _report(report, not no_wait)


@click.command()
@click.argument("app")
@etcd_options
def rm(store: Store, app: str) -> None:
    """Remove APP from the cluster (its spec revisions are kept: `fusion history`, `fusion rollback`)."""
    n = ops.remove(store, app)
    click.echo(f"{app}: removed ({n} containers are being stopped)")


@click.command()
@click.argument("app")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@etcd_options
def history(store: Store, app: str, as_json: bool) -> None:
    """The spec revisions of APP, oldest first; `*` marks the live one."""
    specs = store.specs(app)
    if not specs:
        raise InputError(f"app {app!r} has never been deployed")
    current, _ = store.current(app)
    live = current.revision if current else None
    if as_json:
        _json([{"revision": s.revision, "created_at": s.created_at, "note": s.note, "live": s.revision == live,
                "services": {n: sv["deploy"]["replicas"] for n, sv in s.app.get("services", {}).items()}}
               for s in specs])
        return
    _table(["", "REV", "CREATED (UTC)", "SERVICES", "NOTE"],
           [["*" if s.revision == live else "", str(s.revision), _when(s.created_at),
             " ".join(f"{n}={sv['deploy']['replicas']}" for n, sv in sorted(s.app.get("services", {}).items())),
             s.note] for s in specs])
    if live is None:
        click.echo(f"({app} is not deployed now)")


@click.command()
@click.argument("app")
@click.option("--to", "to", type=int, help="Revision to return to (default: the one before the live one).")
@with_wait
@etcd_options
def rollback(store: Store, app: str, to: int | None, no_wait: bool, timeout: float) -> None:
    """Deploy an earlier spec revision of APP again (as a new revision)."""
    if store.current(app)[0] is None and to is not None:
        spec = store.spec(app, to)
        if spec is None:
            raise InputError(f"{app} has no revision {to}")
        from specs.app import App

        report = ops.deploy(store, App.model_validate(spec.app), note=f"rollback to {to}",
                            wait=_wait_options(no_wait, timeout), on_plan=_show_plan)
    else:
        report = ops.rollback(store, app, to, wait=_wait_options(no_wait, timeout), on_plan=_show_plan)
    _report(report, not no_wait)


@click.command()
@click.argument("host")
@click.option("--reason", default="", help="Why (shown by `fusion hosts`).")
@etcd_options
def cordon(store: Store, host: str, reason: str) -> None:
    """Place no new containers on HOST (what runs there stays)."""
    ops.cordon(store, host, reason)
    click.echo(f"{host}: cordoned")


@click.command()
@click.argument("host")
@etcd_options
def uncordon(store: Store, host: str) -> None:
    """Allow new containers on HOST again."""
    click.echo(f"{host}: " + ("uncordoned" if ops.uncordon(store, host) else "was not cordoned"))


LOGS_RE = re.compile(r"^([^/]+)/([^/]+)(?:/(\d+))?$")


@click.command()
@click.argument("target", metavar="APP/SERVICE[/N]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", type=int, default=100, show_default=True, help="Lines of history.")
@etcd_options
def logs(store: Store, target: str, follow: bool, lines: int) -> None:
    """Journal lines of a service's containers, fetched from their hosts' agents through etcd."""
    m = LOGS_RE.match(target)
    if not m:
        raise InputError(f"cannot read {target!r}", hint="write APP/SERVICE or APP/SERVICE/N")
    replica = int(m.group(3)) if m.group(3) else None
    many = replica is None

    def emit(label: str, line: str) -> None:
        click.echo(f"{label} | {line}" if many else line)

    logs_.logs(store, m.group(1), m.group(2), replica, lines=lines, follow=follow, emit=emit)


@click.command()
@click.option("--once", is_flag=True, help="Reconcile once and exit.")
@click.option("--grace", type=float, default=15.0, show_default=True,
              help="Seconds unregistered hosts get to register before their containers move.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@etcd_options
def reconcile(store: Store, once: bool, grace: float, duration: float | None) -> None:
    """Keep apps placed: when a host's registration expires, move its containers to other hosts."""

    def note(text: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {text}", err=True)
        sys.stderr.flush()

    if once:
        for line in reconcile_.reconcile_once(store):
            click.echo(line)
        return
    reconcile_.reconcile_loop(store, grace=grace, duration=duration, on_note=note)


commands: list[click.Command] = [deploy, ps, logs, scale, rm, hosts, history, rollback, cordon, uncordon, reconcile]
