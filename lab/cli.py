"""Commands that `lab/` adds to `fusion`: the ``fusion lab`` group.

Side effects: through :mod:`lab.ops` only; this module parses options and prints.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import click
from rich.console import Console
from rich.table import Table

from lab import ops, tree
from lab.frontdoor import FrontDoor, store_backends
from lab.prober import probe as probe_
from lab.state import DEFAULT_SUBNET, LabConfig, load
from orchestrator import etcd_local
from specs.errors import InputError

_name = click.option("--name", default="lab", show_default=True, help="Which lab (several may coexist).")


class _Steps:
    """Progress for long operations: a spinner on the current step, a tick and its time when done."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = console.status("")
        self.current: str | None = None
        self.t0 = self.started = time.monotonic()

    def __enter__(self) -> _Steps:
        self.status.__enter__()
        return self

    def __call__(self, step: str) -> None:
        self._done()
        self.current, self.started = step, time.monotonic()
        self.status.update(f"{step} ...")

    def _done(self) -> None:
        if self.current is not None:
            self.console.print(f"[green]✓[/green] {self.current} [dim]({time.monotonic() - self.started:.1f}s)[/dim]")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._done()
        self.status.__exit__(exc_type, *rest)  # type: ignore[arg-type]


@click.group("lab")
def lab() -> None:
    """A real local cluster: atomic hosts booted with systemd-nspawn, etcd and a registry."""


@lab.command("up")
@_name
@click.option("--hosts", "hosts", type=click.IntRange(1, 20),
              help="Number of hosts [default: 3, or as many as the lab has].")
@click.option("--tree", "treefile", metavar="TREEFILE|builtin",
              help="The hosts' tree: a treefile to compose, or `builtin` (the lab's own minimal trixie "
                   "tree). Default: examples/trees/fusion-host.yaml; an existing lab keeps its tree.")
@click.option("--subnet", help=f"The lab's own IPv4 network [default: {DEFAULT_SUBNET}, or the lab's].")
@click.option("--boot-tries", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Failed boots of a new deployment before falling back to the previous one.")
@click.option("--health-deadline", type=click.FloatRange(5, 3600), default=90, show_default=True,
              help="Seconds a new deployment has to become healthy after it boots.")
def up(name: str, hosts: int | None, treefile: str | None, subnet: str | None, boot_tries: int,
       health_deadline: float) -> None:
    """Bring the lab up (idempotent: a second run changes nothing)."""
    console = Console(stderr=True)
    t0 = time.monotonic()
    with _Steps(console) as steps:
        old = load(name)
        config = LabConfig(name=name, hosts=hosts or (len(old.hosts) if old else 3),
                           subnet=subnet or (old.config.subnet if old else DEFAULT_SUBNET),
                           max_boot_tries=boot_tries, health_deadline=health_deadline)
        state = ops.up(config, treefile=treefile, progress=steps)
    # From now on a plain `fusion deploy` (no --etcd) talks to this lab's etcd.
    etcd_local.use_cluster(etcd_local.ChosenCluster(state.etcd_url, by=f"lab {name}"))
    console.print(f"lab [bold]{name}[/bold] up in {time.monotonic() - t0:.1f}s: "
                  f"{len(state.hosts)} hosts, etcd {state.etcd_url}, registry {state.registry}")


@lab.command("down")
@_name
def down(name: str) -> None:
    """Stop everything the lab started and remove it (no process, mount, bridge or netns is left)."""
    console = Console(stderr=True)
    with _Steps(console) as steps:
        state = load(name)
        left = ops.down(name, progress=steps)
    if state is not None:
        etcd_local.forget_cluster(endpoints=state.etcd_url)
    if left:
        raise ops.LabError("left behind: " + ", ".join(left))


@lab.command("status")
@_name
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(name: str, as_json: bool) -> None:
    """Hosts, addresses, states, booted checksum and version; etcd and registry URLs."""
    st = ops.status(ops.require(name))
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    console = Console()
    console.print(f"lab [bold]{st['name']}[/bold]  etcd {st['etcd']}  registry {st['registry']}  "
                  f"repo {st['repo']}")
    table = Table("host", "address", "state", "booted", "version", "note")
    for h in st["hosts"]:
        note = h["reason"]
        if h["fallback_from"]:
            note = f"fell back from {h['fallback_from'][:12]}"
        elif h["booted"] and h["default"] and h["booted"] != h["default"]:
            note = f"default is {h['default'][:12]} (reboot to use it)"
        table.add_row(h["name"], h["address"], h["state"], (h["booted"] or "-")[:12], h["version"] or "-", note)
    console.print(table)


@lab.command("shell", context_settings={"ignore_unknown_options": True})
@_name
@click.argument("host")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def shell(name: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD in HOST (a login shell without CMD)."""
    sys.exit(ops.shell(ops.require(name), host, list(cmd)))


@lab.command("reboot")
@_name
@click.argument("host")
@click.option("--no-wait", is_flag=True, help="Do not wait for the host to be running again.")
def reboot(name: str, host: str, no_wait: bool) -> None:
    """Reboot HOST cleanly; it boots the default deployment (a staged upgrade takes effect)."""
    t0 = time.monotonic()
    state = ops.require(name)
    ops.reboot(state, host, wait=0 if no_wait else 300)
    if not no_wait:
        h = ops.host_status(state, state.host(host))
        click.echo(f"{host} {h.state} on {(h.booted or '-')[:12]} after {time.monotonic() - t0:.1f}s"
                   + (f" (fell back from {h.fallback_from[:12]})" if h.fallback_from else ""))


@lab.command("kill")
@_name
@click.argument("host")
def kill(name: str, host: str) -> None:
    """Power loss: HOST stops at once, without shutting down."""
    ops.kill(ops.require(name), host)


@lab.command("start")
@_name
@click.argument("host")
def start(name: str, host: str) -> None:
    """Power HOST on again."""
    ops.start(ops.require(name), host)


@lab.command("publish")
@_name
@click.argument("treefile", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--version", "version", metavar="V",
              help="Without TREEFILE: publish the hosts' tree again as version V (quick, no compose).")
@click.option("--broken", is_flag=True, help="With --version: a tree whose health check fails (to see a rollback).")
def publish(name: str, treefile: str | None, version: str | None, broken: bool) -> None:
    """Compose TREEFILE into the lab repo as a new version the hosts can upgrade to (or, with
    --version, publish the current tree again as a new version)."""
    if (treefile is None) == (version is None):
        raise InputError("fusion lab publish: give a TREEFILE or --version V (not both)")
    if broken and version is None:
        raise InputError("fusion lab publish: --broken goes with --version")
    console = Console(stderr=True)
    state = ops.require(name)
    before = tree.rev_parse(state.repo, state.ref)
    if version is not None:
        csum = ops.publish_version(state, version, broken=broken)
    else:
        assert treefile is not None
        with _Steps(console) as steps:
            csum = ops.publish(state, treefile, progress=steps)
    version = tree.commit_version(state.repo, csum) or "-"
    note = "unchanged: the hosts' tree is already this" if csum == before else "published"
    console.print(f"{note}: {state.ref} {csum[:12]} version {version}; "
                  f"move the hosts to it with `fusion upgrade --version {version}`")
    click.echo(csum)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"--listen {text!r}: write ADDRESS:PORT", hint="e.g. --listen 127.0.0.1:8080")
    return host, int(port)


@lab.command("frontdoor")
@_name
@click.option("--port", type=click.IntRange(1, 65535), required=True,
              help="The host port the app publishes; its ready containers are the backends.")
@click.option("--listen", metavar="ADDR:PORT", help="Where to listen [default: the lab bridge address, PORT].")
def frontdoor(name: str, port: int, listen: str | None) -> None:
    """A load balancer in front of the app's ready containers, until SIGTERM or Ctrl-C.

    Backends come from the lab's etcd (refreshed twice a second); GET and HEAD are retried on the
    next backend when one fails, so a draining host costs clients nothing.
    """
    from common.store import EtcdConfig, Store  # only this command talks to etcd

    state = ops.require(name)
    store = Store(EtcdConfig.parse(state.etcd_url))
    address = _address(listen) if listen else (state.bridge_address, port)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with FrontDoor(store_backends(store, port), address) as door:
        click.echo(f"front door on {door.url} -> ready containers publishing {port}")
        while not stopping.wait(0.5):
            pass


@lab.command("probe")
@click.argument("url")
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=10, show_default=True,
              help="Requests per second.")
@click.option("--duration", type=click.FloatRange(0.1, 86400), default=60, show_default=True,
              help="Seconds to probe for.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def probe(url: str, rate: float, duration: float, as_json: bool) -> None:
    """GET URL RATE times a second for DURATION seconds; exit 1 if any request was not answered 200."""
    report = probe_(url, rate, duration)
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(report.summary())
        for line in report.failures:
            click.echo(f"  {line}", err=True)
    if report.failed:
        sys.exit(1)


commands: list[click.Command] = [lab]
