"""``fusion upgrade`` (rolling host upgrades) and ``fusion drain``.

Side effects: terminal output, and what ``driver``/``drain`` do in etcd. No logic beyond parsing
arguments and rendering: the decisions are ``machine.step``'s.

``fusion upgrade --version V`` records a new rollout in etcd and drives it in the foreground with a
progress display (``--detach``: only record it; ``fusion upgrade resume`` drives it). Killing the
driver loses nothing: ``fusion upgrade resume`` continues from the saved state.

``fusion fleetlock serve --listen HOST:PORT [--slots N]`` runs the FleetLock server
(:mod:`orchestrator.upgrade.fleetlock`) in the foreground until SIGTERM/Ctrl-C: hosts in the
agent's auto-update mode (or Zincati) ask it for a reboot slot, out of the same slots rollouts use.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from common.store import ConflictError, Store
from orchestrator import drain as drains
from orchestrator import etcd_local
from orchestrator.cli import etcd_options
from orchestrator.upgrade import driver, machine, rollouts, slots, status, versions
from orchestrator.upgrade.fleetlock import FleetLockServer, parse_listen
from orchestrator.upgrade.machine import RolloutState
from specs.errors import FusionError, InputError


def _active(store: Store) -> RolloutState:
    state = rollouts.active(store) or next(iter(reversed(rollouts.all_rollouts(store))), None)
    if state is None:
        raise InputError("no rollout", hint="start one with `fusion upgrade --version V`")
    return state


def _follow(store: Store, rollout_id: str, max_seconds: float | None) -> None:
    """Drive the rollout with a live display; exit 0 when every host is on the version."""
    console = Console(stderr=True)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, frame: stopping.append(sig))
    shown: dict[str, str] = {}  # host -> the state last printed (without a live display)

    def show(state: RolloutState) -> None:
        if live is not None:
            live.update(Text(status.render(state, time.time())))
            return
        for h in state.hosts:
            if shown.get(h.name) != h.state:
                shown[h.name] = h.state
                console.print(f"{h.name}  {h.state:<12} {h.message}".rstrip(), highlight=False, markup=False)

    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
    if live is not None:
        live.start()
    try:
        state = driver.drive(store, rollout_id, on_turn=show, say=lambda line: console.print(f"  {line}", highlight=False, markup=False),
                             stop=lambda: bool(stopping), max_seconds=max_seconds)
    finally:
        if live is not None:
            live.stop()
    if live is None:
        console.print(status.render(state, time.time()), highlight=False, markup=False)
    bad = [h for h in state.hosts if h.state in ("failed", "rolled-back")]
    if state.phase == "done" and not bad:
        return
    if not driver.finished(state):
        sys.exit(1)  # stopped (signal or --max-seconds): `fusion upgrade resume` continues
    raise FusionError(f"rollout {state.id} {state.phase}: " + (
        "; ".join(f"{h.name} {h.state}: {h.message}" for h in bad) or state.message),
        hint="`fusion upgrade status` for details")


@click.group(invoke_without_command=True)
@click.option("--version", "version", metavar="V", help="The tree version (or commit prefix) to move every host to.")
@click.option("--max-unavailable", type=click.IntRange(1), default=1, show_default=True,
              help="Hosts out of service at once.")
@click.option("--canary", type=click.IntRange(0), default=0, show_default=True,
              help="Upgrade this many hosts first, then wait for `fusion upgrade approve`.")
@click.option("--auto-promote", is_flag=True, help="Go on after the canaries without approval.")
@click.option("--max-failures", type=click.IntRange(1), default=1, show_default=True,
              help="Halt the rollout after this many hosts failed.")
@click.option("--window", metavar="SPEC", help='When hosts may start, e.g. "Sat,Sun 02:00-05:00 Europe/Berlin".')
@click.option("--force", is_flag=True, help="Also try hosts where this version failed before.")
@click.option("--host", "only", multiple=True, metavar="HOST", help="Only these hosts (repeatable).")
@click.option("--drain-timeout", type=float, default=600.0, show_default=True)
@click.option("--boot-timeout", type=float, default=300.0, show_default=True,
              help="Seconds for a host to come back on the new tree before it is rolled back.")
@click.option("--verify-timeout", type=float, default=120.0, show_default=True,
              help="Seconds for a host to be healthy on the new tree before it is rolled back.")
@click.option("--detach", is_flag=True, help="Record the rollout and return (`fusion upgrade resume` drives it).")
@click.option("--max-seconds", type=float, default=None, hidden=True)
@etcd_options
@click.pass_context
def upgrade(ctx: click.Context, /, store: Store, version: str | None, only: tuple[str, ...], detach: bool,
            max_seconds: float | None, **options: Any) -> None:
    """Move every host to tree version V, a few at a time, keeping the apps up."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = store
        return
    if version is None:
        raise InputError("fusion upgrade: --version is required", hint="or a subcommand: status, pause, resume, abort")
    running = rollouts.active(store)
    if running is not None:
        raise InputError(f"rollout {running.id} (version {running.version}) is not finished",
                         hint="`fusion upgrade status`; `fusion upgrade resume` or `fusion upgrade abort`")
    hosts = sorted(store.hosts(), key=lambda h: h.name)
    if only:
        missing = sorted(set(only) - {h.name for h in hosts})
        if missing:
            raise InputError(f"no registered host {', '.join(missing)}", hint="`fusion hosts` lists them")
        hosts = [h for h in hosts if h.name in only]
    if not hosts:
        raise InputError("no registered host to upgrade", hint="`fusion hosts` lists them")
    url, ref = versions.source(hosts)
    target = versions.resolve(url, ref, version, etcd_local.state_dir() / "tree-metadata")
    now = time.time()
    state = machine.new_rollout(f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:4]}",
                                version, target, [h.name for h in hosts], now,
                                failed_versions=rollouts.failed_versions(store), **options)
    rollouts.save(store, state, 0)
    click.echo(f"rollout {state.id}: {len(hosts)} host(s) to {version} ({target[:12]})", err=True)
    if not detach:
        _follow(store, state.id, max_seconds)


def _command(name: str, change: Any, help_text: str) -> click.Command:
    @upgrade.command(name, help=help_text)
    @click.pass_obj
    def cmd(store: Store) -> None:
        for attempt in range(5):
            state, mod = rollouts.load(store, _active(store).id)
            assert state is not None
            new = change(state)
            try:
                rollouts.save(store, new, mod)
            except ConflictError:
                if attempt == 4:
                    raise
                continue
            click.echo(f"rollout {state.id}: {new.phase}")
            return

    return cmd


pause = _command("pause", machine.pause, "Start no new hosts (hosts in flight finish).")
abort = _command("abort", machine.abort, "Stop the rollout: hosts not yet rebooting go back into service.")
approve = _command("approve", machine.approve, "Go on after the canary hosts.")


@upgrade.command("resume")
@click.option("--max-seconds", type=float, default=None, hidden=True)
@click.pass_obj
def resume(store: Store, max_seconds: float | None) -> None:
    """Resume a paused rollout, or drive an interrupted one to its end."""
    state, mod = rollouts.load(store, _active(store).id)
    assert state is not None
    if state.phase == "paused":
        rollouts.save(store, machine.resume(state), mod)
    _follow(store, state.id, max_seconds)


@upgrade.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_(store: Store, as_json: bool) -> None:
    """The newest rollout: per host waiting/draining/staging/rebooting/verifying/done/failed/rolled-back."""
    state = _active(store)
    if as_json:
        click.echo(json.dumps(status.summary(state), indent=2, sort_keys=True))
    else:
        click.echo(status.render(state, time.time()))


@click.command()
@click.argument("host")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds for the replacements to become healthy.")
@click.option("--force", is_flag=True, help="Stop containers that cannot be placed elsewhere or do not become healthy.")
@etcd_options
def drain(store: Store, host: str, timeout: float, force: bool) -> None:
    """Cordon HOST and move its containers to other hosts, replacements healthy first."""
    known = {h.name for h in store.hosts()} | {r.host for r in store.placements()}
    if host not in known:
        raise InputError(f"no host {host}", hint="`fusion hosts` lists them")
    report = drains.drain(store, host, timeout=timeout, force=force, progress=lambda line: click.echo(line, err=True))
    moved = len(report.moved) + len(report.stopped)
    click.echo(f"{host} drained: {len(report.moved)} moved, {len(report.stopped)} stopped" if moved
               else f"{host} drained (nothing ran there); cordoned until `fusion uncordon {host}`")


@click.group()
def fleetlock() -> None:
    """A FleetLock server (Zincati's reboot-lock protocol) for hosts that update themselves."""


@fleetlock.command("serve")
@click.option("--listen", "address", required=True, metavar="HOST:PORT",
              callback=lambda ctx, param, value: parse_listen(value),  # checked before etcd is reached
              help="Where to answer, e.g. 10.0.0.1:8095 ([::1]:8095 for IPv6; port 0 picks a free one).")
@click.option("--slots", "slot_count", type=click.IntRange(1), default=1, show_default=True,
              help="Hosts that may reboot at once (the reboot slots rollouts take too).")
@click.option("--max-seconds", type=float, default=None, hidden=True)
@etcd_options
def serve(store: Store, address: tuple[str, int], slot_count: int, max_seconds: float | None) -> None:
    """Serve POST /v1/pre-reboot and /v1/steady-state until stopped (SIGTERM or Ctrl-C)."""
    held = slots.holders(store)  # etcd answers (else one clear error, before serving anything)
    server = FleetLockServer(store, address, slot_count).start()
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    click.echo(f"FleetLock server on {server.url}: {slot_count} reboot slot(s), {len(held)} held now", err=True)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    finally:
        server.stop()
    click.echo("FleetLock server stopped", err=True)


commands: list[click.Command] = [upgrade, drain, fleetlock]
