"""The agent's OS-tree duties: obey the host's TreeRequest and run the host's health checks.

Side effects: ``host.tree.ops`` (ostree pulls and deployments on ``/sysroot``), ``systemctl reboot``
through the runner, the health-check executables, and one small file in ``/var/lib/fusion``
(kept across deployments) that remembers which boot requests were already carried out.

:func:`next_step` is the pure decision; :func:`obey` carries it out. A ``boot`` request reboots the
host at most once per (``by``, ``checksum``): if the host comes back on another deployment (boot
counting fell back, or someone rolled back by hand) it stays there and the rollout sees it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.runner import run
from specs.cluster import HostHealth, TreeRequest, TreeState
from specs.errors import FusionError

log = logging.getLogger("fusion-agent")

SYSROOT = Path("/sysroot")
BOOTED_FILE = Path("/var/lib/fusion/agent/boot-requests")
HEALTH_DIRS = (Path("/usr/lib/fusion/health.d"), Path("/etc/fusion/health.d"))
HEALTH_TIMEOUT = 20.0

Step = Literal["nothing", "fetch", "stage", "reboot"]


@dataclass(frozen=True)
class TreeView:
    """What the agent knows of its tree when it decides."""

    booted: str | None
    default: str | None  # the next boot's deployment
    have: bool  # the requested commit is in the repo
    rebooted_for: bool  # a reboot for this very request was already done


def next_step(request: TreeRequest | None, view: TreeView) -> Step:
    """The one thing to do next for ``request`` (call again after doing it)."""
    if request is None:
        return "nothing"
    if not view.have and view.booted != request.checksum:
        return "fetch"
    if request.action == "fetch":
        return "nothing"
    if view.default != request.checksum:
        return "stage"
    if request.action == "boot" and view.booted != request.checksum and not view.rebooted_for:
        return "reboot"
    return "nothing"


def request_id(request: TreeRequest) -> str:
    return f"{request.by} {request.checksum}"


def rebooted_for(request: TreeRequest, record: Path = BOOTED_FILE) -> bool:
    """Whether a reboot for ``request`` was already done (``record`` lists them)."""
    with contextlib.suppress(OSError):
        return request_id(request) in record.read_text().splitlines()
    return False


def _remember_reboot(request: TreeRequest, record: Path) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    lines = [] if not record.exists() else record.read_text().splitlines()
    record.write_text("\n".join([*lines[-50:], request_id(request)]) + "\n")


def obey(request: TreeRequest | None, reboot: Callable[[], None], sysroot: Path = SYSROOT,
         record: Path = BOOTED_FILE) -> Step:
    """Carry ``request`` out as far as it goes without waiting; returns the last step taken.
    ``record`` remembers the reboots done (host.agent.autoupdate passes its own requests here too)."""
    from host.tree import ops  # noqa: PLC0415 (ostree tools are only needed on OSTree hosts)

    taken: Step = "nothing"
    for _ in range(3):  # fetch, stage, reboot at most
        deps = ops.status(sysroot)
        booted = next((d.checksum for d in deps if d.booted), None)
        view = TreeView(booted, deps[0].checksum if deps else None,
                        request is not None and ops.has_commit(sysroot, request.checksum),
                        request is not None and rebooted_for(request, record))
        step = next_step(request, view)
        if step == "nothing" or request is None:
            return taken
        log.info("tree request %s %s: %s", request.action, request.checksum[:12], step)
        if step == "fetch":
            ops.fetch(sysroot, request.checksum)
        elif step == "stage":
            log.info("%s", ops.make_default(sysroot, request.checksum).message)
        else:
            _remember_reboot(request, record)
            reboot()
            return step
        taken = step
    return taken


def staged_unit_dir(unit_dir: Path, sysroot: Path = SYSROOT) -> Path | None:
    """``unit_dir`` (such as /etc/systemd/system) in the deployment the next boot starts, when that
    is not the booted one (None on a host that is not an OSTree system, or has nothing staged)."""
    if not Path("/run/ostree-booted").exists():
        return None
    from host.tree import ops  # noqa: PLC0415

    deps = ops.status(sysroot)
    if not deps or deps[0].booted:
        return None
    return ops.deployment_path(sysroot, deps[0]) / unit_dir.relative_to("/")


def system_reboot() -> None:
    run(["systemctl", "reboot"], timeout=60)


def boot_complete() -> bool:
    """Whether systemd finished booting this host (``systemctl is-system-running``: running or
    degraded), as greenboot and Zincati wait for before they call a boot good."""
    try:
        r = run(["systemctl", "is-system-running"], timeout=15, check=False)
    except FusionError:
        return False
    return r.stdout.strip() in ("running", "degraded")


def fetched(request: TreeRequest | None, state: TreeState, sysroot: Path = SYSROOT) -> TreeState:
    """``state`` with ``fetched`` set when the requested commit is in the repo."""
    if request is None or not Path("/run/ostree-booted").exists():
        return state
    from host.tree import ops  # noqa: PLC0415

    have = ops.has_commit(sysroot, request.checksum)
    return state.model_copy(update={"fetched": request.checksum if have else None})


# --- health checks --------------------------------------------------------------------------------


def health_checks(dirs: tuple[Path, ...] = HEALTH_DIRS) -> list[Path]:
    """The executables to run, by name (``/etc`` overrides ``/usr/lib`` for the same name)."""
    found: dict[str, Path] = {}
    for d in dirs:
        with contextlib.suppress(OSError):
            for p in sorted(d.iterdir()):
                if p.is_file() and os.access(p, os.X_OK):
                    found[p.name] = p
    return [found[n] for n in sorted(found)]


def check_health(dirs: tuple[Path, ...] = HEALTH_DIRS, now: float | None = None) -> HostHealth:
    failed = []
    for check in health_checks(dirs):
        try:
            r = run([str(check)], timeout=HEALTH_TIMEOUT, check=False)
        except FusionError as e:  # could not start, or timed out
            failed.append(f"{check.name}: {e}")
            continue
        if r.returncode != 0:
            last = (r.stderr + r.stdout).strip().splitlines()
            failed.append(f"{check.name}: {last[-1] if last else f'exit status {r.returncode}'}")
    return HostHealth(ok=not failed, failed=tuple(failed), checked_at=time.time() if now is None else now)
