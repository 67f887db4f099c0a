"""The one systemd driver of the agent: unit files on disk, ``systemctl``, ``journalctl``, ``podman ps``.

Side effects: everything here. Commands go through :mod:`common.runner`.

Where units go: the agent writes the *rendered* ``.service`` files (units.render, podman engine)
straight into ``/etc/systemd/system``, not Quadlet ``.container`` files into
``/etc/containers/systemd``. Reasons: what Fusion rendered (and hashed) is exactly what systemd
runs — no second generator in between whose output depends on the podman version in the host
tree; the hash line the agent reads back survives (a generated unit would drop comments); it
works on hosts whose podman has no Quadlet (Debian 12's 4.3); and ``systemctl enable`` works on
real files (it refuses generated units). Fusion-managed files are recognised by their first line
``# X-Fusion-Hash: ...``; the agent never touches any other file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.runner import CommandError, run
from host.agent.reconcile import HASH_HEADER, RESTART_HEADER, Action, ObservedUnit, add_hosts, read_hash

UNIT_DIR = Path("/etc/systemd/system")
PROPERTIES = ("Id", "ActiveState", "SubState", "NRestarts", "LoadState", "Result")
START_TIMEOUT = 30.0  # systemctl itself; starts are queued with --no-block
STOP_TIMEOUT = 150.0


@dataclass(frozen=True)
class UnitProps:
    name: str
    active: str = "unknown"
    sub: str = ""
    restarts: int = 0
    load: str = ""
    result: str = ""


def parse_show(text: str) -> dict[str, UnitProps]:
    """``systemctl show -p Id,... A B`` output (blocks of KEY=VALUE separated by blank lines)."""
    out: dict[str, UnitProps] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        name = props.get("Id")
        if not name:
            continue
        restarts = props.get("NRestarts", "0")
        out[name] = UnitProps(
            name=name,
            active=props.get("ActiveState", "unknown") or "unknown",
            sub=props.get("SubState", ""),
            restarts=int(restarts) if restarts.isdigit() else 0,
            load=props.get("LoadState", ""),
            result=props.get("Result", ""),
        )
    return out


def parse_podman_health(ps_json: str) -> dict[str, str]:
    """Container name -> health ("healthy", "unhealthy", "starting"), from ``podman ps -a --format json``
    (the status text ends in "(healthy)" etc. when the container has a check)."""
    out: dict[str, str] = {}
    try:
        entries = json.loads(ps_json or "[]")
    except ValueError:
        return out
    for e in entries or []:
        status = str(e.get("Status", ""))
        health = next((h for h in ("unhealthy", "healthy", "starting") if f"({h})" in status), None)
        if health is None:
            continue
        for name in e.get("Names") or []:
            out[str(name)] = health
    return out


class Systemd:
    """The host's systemd, for the units the agent manages in ``unit_dir``."""

    def __init__(self, unit_dir: Path = UNIT_DIR, systemctl: str = "systemctl", podman: str = "podman") -> None:
        self.unit_dir = Path(unit_dir)
        self.systemctl = systemctl
        self.podman = podman
        self.stopping: set[str] = set()  # removed units whose stop jobs were not waited for

    # --- reading ----------------------------------------------------------------------------------

    def managed_files(self, unit_dir: Path | None = None) -> dict[str, tuple[str | None, str | None]]:
        """Unit name -> (stamped hash, stamped restart hash), for every Fusion-managed file in
        ``unit_dir`` (default: ours)."""
        unit_dir = self.unit_dir if unit_dir is None else unit_dir
        out: dict[str, tuple[str | None, str | None]] = {}
        if not unit_dir.is_dir():
            return out
        for path in sorted(unit_dir.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                with path.open(encoding="utf-8", errors="replace") as f:
                    head = f.readline() + f.readline()
            except OSError:
                continue
            if head.startswith(HASH_HEADER):
                out[path.name] = (read_hash(head), read_hash(head, RESTART_HEADER))
        return out

    def show(self, units: Iterable[str]) -> dict[str, UnitProps]:
        names = sorted(set(units))
        if not names:
            return {}
        r = run([self.systemctl, "show", "-p", ",".join(PROPERTIES), "--", *names], check=False, timeout=30)
        return parse_show(r.stdout)

    def observe(self) -> dict[str, ObservedUnit]:
        files = self.managed_files()
        props = self.show(files)
        return {n: ObservedUnit(n, h, props[n].active if n in props else "unknown", r) for n, (h, r) in files.items()}

    def health(self) -> dict[str, str]:
        r = run([self.podman, "ps", "--all", "--format", "json"], check=False, timeout=30)
        return parse_podman_health(r.stdout) if r.returncode == 0 else {}

    def journal(self, unit: str, lines: int) -> list[str]:
        r = run(
            ["journalctl", "--no-pager", "-o", "cat", "-u", unit, "-n", str(lines)], check=False, timeout=30
        )
        return r.stdout.splitlines()

    # --- acting -----------------------------------------------------------------------------------

    def apply(self, actions: Sequence[Action], heartbeat: Callable[[], None] = lambda: None,
              needs_stopped: Callable[[str], bool] = lambda unit: True) -> list[str]:
        """Carry out ``actions`` in order; returns one error message per action that failed (the
        rest still run: one bad unit must not stop the others). ``heartbeat`` is called between
        actions and while waiting for a stop (the agent keeps its lease and watchdog alive).

        The stops come first, in one job set (systemd stops them in parallel). They are waited
        for only when a unit that ``needs_stopped`` (it may need their port) starts after them;
        else their files go at once (an OSTree deployment staged next merges a current /etc) and
        systemd finishes the stop jobs by itself."""
        errors: list[str] = []
        stops = [a.unit for a in actions if a.kind == "stop"]
        if stops:
            wait = any(a.kind in ("start", "restart") and needs_stopped(a.unit) for a in actions)
            self.stop(stops, heartbeat, wait=wait)
            if not wait:
                self.stopping.update(stops)
        for a in actions:
            if a.kind == "stop":
                continue
            try:
                self._apply(a, heartbeat)
            except (CommandError, OSError) as e:
                errors.append(f"{a}: {e}")
            heartbeat()
        return errors

    def _apply(self, a: Action, heartbeat: Callable[[], None]) -> None:
        if a.kind == "write":
            assert a.text is not None
            self.write(a.unit, a.text)
        elif a.kind == "remove":
            self.remove(a.unit)
        elif a.kind == "daemon-reload":
            run([self.systemctl, "daemon-reload"], timeout=60)
        elif a.kind == "start":
            self._enable(a.unit)
            run([self.systemctl, "start", "--no-block", a.unit], timeout=START_TIMEOUT)
        elif a.kind == "restart":
            self._enable(a.unit)
            run([self.systemctl, "restart", "--no-block", a.unit], timeout=START_TIMEOUT)
        elif a.kind == "refresh":
            assert a.text is not None
            self.refresh_hosts(a.unit, add_hosts(a.text))
        else:
            raise AssertionError(a.kind)

    def stop(self, names: list[str], heartbeat: Callable[[], None], timeout: float = STOP_TIMEOUT,
             wait: bool = True) -> None:
        """Stop units (in one job set: systemd orders them by their dependencies and stops the
        rest in parallel); with ``wait``, wait (bounded) until they are down, calling
        ``heartbeat`` meanwhile."""
        run([self.systemctl, "stop", "--no-block", "--", *names], check=False, timeout=30)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            props = self.show(names)
            if not any(p.active in ("active", "activating", "deactivating", "reloading") for p in props.values()):
                return
            heartbeat()
            time.sleep(0.5)

    def reap(self) -> list[str]:
        """Forget units removed while they were stopping, once they are down: ``reset-failed``
        (a container killed after its grace period ends "failed"; no removed unit stays listed).
        Returns the units forgotten."""
        if not self.stopping:
            return []
        down = [n for n, p in self.show(self.stopping).items()
                if p.active not in ("active", "activating", "deactivating", "reloading")]
        if down:
            run([self.systemctl, "reset-failed", "--", *down], check=False, timeout=30)
            self.stopping.difference_update(down)
        return down

    def forget_in(self, other: Path) -> list[str]:
        """Remove from ``other`` (the unit folder of a staged OSTree deployment, whose /etc was
        merged when it was staged) the Fusion-managed units that are gone from ours, with their
        ``.wants``/``.requires`` links, so the next boot does not start what was removed since.
        Returns the units removed."""
        gone = sorted(set(self.managed_files(other)) - set(self.managed_files()))
        for name in gone:
            (other / name).unlink(missing_ok=True)
            for links in [*other.glob("*.wants"), *other.glob("*.requires")]:
                (links / name).unlink(missing_ok=True)
        return gone

    def refresh_hosts(self, unit: str, entries: dict[str, str]) -> None:
        """Point a running container's ``--add-host`` names at new addresses without a restart:
        podman writes those entries first in the container's hosts file (before ``127.0.0.1``);
        that block is rewritten in place (same inode: the container's bind mount sees it)."""
        name = unit.removesuffix(".service")
        r = run([self.podman, "inspect", "--format", "{{.HostsPath}}", name], check=False, timeout=30)
        path = Path(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else None
        if path is None or not path.is_file():
            return  # not running as a container of that name: the next start uses the new unit
        lines = path.read_text().splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith("127.0.0.1")), 0)
        new = [f"{addr}\t{host}" for host, addr in sorted(entries.items())] + lines[start:]
        with path.open("r+") as f:
            f.write("\n".join(new) + "\n")
            f.truncate()

    def write(self, name: str, text: str) -> None:
        """Write a unit file atomically (temp file + rename in the same directory)."""
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        path = self.unit_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def remove(self, name: str) -> None:
        run([self.systemctl, "disable", "--", name], check=False, timeout=30)
        (self.unit_dir / name).unlink(missing_ok=True)
        run([self.systemctl, "reset-failed", "--", name], check=False, timeout=30)

    def _enable(self, name: str) -> None:
        text = (self.unit_dir / name).read_text(encoding="utf-8", errors="replace")
        if "\n[Install]" in text:
            run([self.systemctl, "enable", "--", name], timeout=30)
