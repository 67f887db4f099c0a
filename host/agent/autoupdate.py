"""The agent's auto-update mode (Zincati-style): a host follows its tree's ref by itself, and a
FleetLock server (``fusion fleetlock serve``) makes sure only a few hosts reboot at once.

Configured from the agent's environment (``/etc/fusion/agent.env``)::

    FUSION_AUTO_UPDATE=fleetlock               # "off" (the default) or "fleetlock"
    FUSION_FLEETLOCK_URL=http://10.0.0.1:8095  # the FleetLock server
    FUSION_FLEETLOCK_GROUP=default             # the FleetLock group (optional)
    FUSION_AUTO_UPDATE_INTERVAL=300            # seconds between checks (and lock attempts)

One update: **check** (a metadata-only pull of the ref the booted deployment follows; a newer commit
is downloaded at once, before any slot is taken) -> **lock** (``POST /v1/pre-reboot`` with
``id`` = the host's name; refused: try again at the next check) -> **stage-and-reboot** (the same
code a rollout's ``boot`` TreeRequest runs: :func:`host.agent.tree.obey`) -> after the reboot, once
the boot is over and the host's health checks pass on the new tree (the agent's ``healthy``),
**unlock** (``POST /v1/steady-state``).

It never fights a rollout: while the host has a TreeRequest it starts nothing (and gives back a slot
it holds). A pinned deployment (``fusion host deploy VERSION``) is not auto-updated. A host that held
the lock and came back on another tree (boot counting fell back) gives the slot back and remembers
that commit as failed, so it does not try it again. A host that booted the new tree but is not
healthy keeps the slot: no other host takes the same update until someone looks.

:func:`next_step` is the pure decision. :class:`AutoUpdater` is the shell. Side effects (all in the
shell): ``host.tree.ops`` (pulls and deployments on the sysroot), the FleetLock client's HTTP
requests, the reboot callback, and two small files under ``/var/lib/fusion/agent`` (kept across
deployments): ``fleetlock.json`` (we hold a slot, for which commit) and ``fleetlock-failed``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from host.agent import tree
from host.agent.fleetlock import FleetLockClient, LockRefused, UnlockRefused, check_url
from specs.cluster import TreeRequest
from specs.errors import FusionError, InputError

log = logging.getLogger("fusion-agent")

STATE_DIR = Path("/var/lib/fusion/agent")
DEFAULT_INTERVAL = 300.0
RETRY_AFTER_ERROR = 30.0  # seconds of quiet after a failed step (at most the interval)
KEEP_FAILED = 20

Step = Literal["nothing", "check", "lock", "stage-and-reboot", "unlock"]


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    url: str
    group: str = "default"
    interval: float = DEFAULT_INTERVAL


def settings_from_env(env: Mapping[str, str]) -> Settings | None:
    """The auto-update settings, or None when the mode is off; InputError names a bad variable."""
    mode = env.get("FUSION_AUTO_UPDATE", "").strip().lower()
    if mode in ("", "off"):
        return None
    if mode != "fleetlock":
        raise InputError(f"FUSION_AUTO_UPDATE={mode!r}: expected 'off' or 'fleetlock'")
    url = env.get("FUSION_FLEETLOCK_URL", "").strip()
    if not url:
        raise InputError("FUSION_AUTO_UPDATE=fleetlock needs FUSION_FLEETLOCK_URL (the FleetLock server)",
                         hint="e.g. FUSION_FLEETLOCK_URL=http://10.0.0.1:8095 (`fusion fleetlock serve`)")
    group = env.get("FUSION_FLEETLOCK_GROUP", "").strip() or "default"
    raw = env.get("FUSION_AUTO_UPDATE_INTERVAL", "").strip()
    try:
        interval = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        interval = -1.0
    if not interval > 0 or interval == float("inf"):
        raise InputError(f"FUSION_AUTO_UPDATE_INTERVAL={raw!r}: expected a number of seconds above 0")
    return Settings(url=check_url(url), group=group, interval=interval)


# --- the pure decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """What the auto-updater knows when it decides."""

    booted: str | None  # the running commit
    available: str | None  # the newest commit of the booted deployment's ref, as of the last check
    held: str | None  # we hold a reboot slot to move to this commit (the marker file)
    rebooted: bool  # the reboot into ``held`` was done (booted != held then means: it fell back)
    healthy: bool  # the host's health checks pass
    rollout: bool  # the host has a TreeRequest (a rollout is moving it)
    pinned: bool = False  # the booted deployment is pinned to a version (``fusion host deploy``)
    failed: bool = False  # ``available`` is a commit this host came back from before
    first: bool = False  # nothing was done yet by this agent process
    now: float = 0.0
    last_check: float | None = None
    last_lock: float | None = None  # the last pre-reboot request
    interval: float = DEFAULT_INTERVAL


def next_step(v: View) -> Step:
    """The one thing to do next (call again after doing it)."""
    if v.held is not None:
        if v.rollout:
            return "unlock"  # a rollout moves this host now: it needs the slot
        if v.booted == v.held or v.rebooted:
            return "unlock" if v.healthy else "nothing"  # unhealthy on the new tree: keep the slot
        return "stage-and-reboot"
    if v.rollout:
        return "nothing"
    if v.first and v.healthy:
        return "unlock"  # like Zincati at start: give back a slot a crash may have left held
    if v.pinned:
        return "nothing"
    if v.last_check is None or v.now - v.last_check >= v.interval:
        return "check"
    if v.available is None or v.available == v.booted or v.failed or not v.healthy:
        return "nothing"
    if v.last_lock is not None and v.now - v.last_lock < v.interval:
        return "nothing"  # refused lately: ask again at the next interval
    return "lock"


# --- the marker -----------------------------------------------------------------------------------


class Marker(BaseModel):
    """``fleetlock.json``: this host holds a reboot slot to boot ``target`` (taken at ``at``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    at: float

    def request(self) -> TreeRequest:
        """The boot request this update carries out (its id is unique to this lock)."""
        return TreeRequest(checksum=self.target, action="boot", by=f"fleetlock@{self.at:.3f}", at=self.at)


# --- the shell ------------------------------------------------------------------------------------


class AutoUpdater:
    """Call :meth:`tick` every few seconds (the agent does, with its health checks)."""

    def __init__(self, settings: Settings, host: str, reboot: Callable[[], None], *,
                 sysroot: Path = tree.SYSROOT, state_dir: Path = STATE_DIR,
                 client: FleetLockClient | None = None) -> None:
        self.settings = settings
        self.client = client or FleetLockClient(settings.url, host, settings.group)
        self.reboot = reboot
        self.sysroot = sysroot
        self.marker_file = state_dir / "fleetlock.json"
        self.failed_file = state_dir / "fleetlock-failed"
        self.record = state_dir / tree.BOOTED_FILE.name  # the reboots done (shared with tree requests)
        self.available: str | None = None
        self.last_check: float | None = None
        self.last_lock: float | None = None
        self.first = True
        self.rebooting = False
        self.quiet_until = 0.0
        self._booted: tuple[str | None, bool] | None = None  # (checksum, pinned): fixed until a reboot

    # --- state ------------------------------------------------------------------------------------

    def booted(self) -> tuple[str | None, bool]:
        """The running commit and whether it is pinned. In a sysroot that is not booted (tests), the
        default deployment stands for the booted one: what the host runs after its next boot."""
        if self._booted is None:
            from host.tree import ops  # noqa: PLC0415 (ostree tools are only needed on OSTree hosts)

            deps = ops.status(self.sysroot)
            dep = next((d for d in deps if d.booted), deps[0] if deps else None)
            self._booted = (None, False) if dep is None else (dep.checksum, dep.override_commit is not None)
        return self._booted

    def marker(self) -> Marker | None:
        try:
            return Marker.model_validate_json(self.marker_file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as e:
            log.error("auto-update: ignoring unreadable %s: %s", self.marker_file, e)
            return None

    def failed(self) -> list[str]:
        with contextlib.suppress(OSError):
            return self.failed_file.read_text().split()
        return []

    def view(self, *, healthy: bool, rollout: bool, now: float) -> View:
        booted, pinned = self.booted()
        marker = self.marker()
        return View(
            booted=booted, available=self.available, held=marker.target if marker else None,
            rebooted=marker is not None and tree.rebooted_for(marker.request(), self.record),
            healthy=healthy, rollout=rollout, pinned=pinned,
            failed=self.available is not None and self.available in self.failed(), first=self.first,
            now=now, last_check=self.last_check, last_lock=self.last_lock, interval=self.settings.interval,
        )

    # --- one turn ---------------------------------------------------------------------------------

    def tick(self, *, healthy: bool, rollout: bool, now: float | None = None) -> Step:
        """Decide and act until there is nothing more to do now; returns the last step taken.
        A step that fails raises (FusionError) and quiets the updater for a while."""
        taken: Step = "nothing"
        at = time.time() if now is None else now
        if self.rebooting or at < self.quiet_until:
            return taken
        for _ in range(4):  # e.g. check, lock, stage-and-reboot
            step = next_step(self.view(healthy=healthy, rollout=rollout, now=at))
            if step == "nothing":
                return taken
            try:
                self._do(step, at)
            except FusionError:
                self.quiet_until = at + min(RETRY_AFTER_ERROR, self.settings.interval)
                raise
            taken = step
            if self.rebooting:
                break
        return taken

    def _do(self, step: Step, now: float) -> None:
        if step == "check":
            self.check(now)
        elif step == "lock":
            self.lock(now)
        elif step == "stage-and-reboot":
            self.stage_and_reboot()
        elif step == "unlock":
            self.unlock()

    def check(self, now: float) -> None:
        from host.tree import ops  # noqa: PLC0415

        self.last_check = now
        head = ops.remote_head(self.sysroot)
        booted, _ = self.booted()
        if head != booted and head not in self.failed():
            if head != self.available:
                log.info("auto-update: %s is available (running %s): downloading it", head[:12],
                         (booted or "nothing")[:12])
            ops.fetch(self.sysroot, head)  # before taking a slot: the slot is held for less time
        self.available = head

    def lock(self, now: float) -> None:
        self.last_lock = now
        target = self.available
        assert target is not None
        try:
            self.client.pre_reboot()
        except LockRefused as e:
            log.info("auto-update to %s: waiting for a reboot slot (%s)", target[:12], e)
            return
        self._write(self.marker_file, Marker(target=target, at=now).model_dump_json())
        log.info("auto-update to %s: holding a reboot slot", target[:12])

    def stage_and_reboot(self) -> None:
        marker = self.marker()
        assert marker is not None

        def reboot() -> None:
            self.rebooting = True  # nothing more from this process: the host goes down
            log.info("auto-update to %s: rebooting", marker.target[:12])
            self.reboot()

        tree.obey(marker.request(), reboot, self.sysroot, self.record)

    def unlock(self) -> None:
        self.first = False  # the start-up release is done (or tried: it is only a safety net)
        marker = self.marker()
        try:
            self.client.steady_state()
        except UnlockRefused as e:  # the slot is a rollout's: we hold none to give back
            log.info("auto-update: %s", e)
        if marker is None:
            return
        booted, _ = self.booted()
        if booted != marker.target and tree.rebooted_for(marker.request(), self.record):
            log.warning("auto-update to %s: the host came back on %s; not trying that commit again",
                        marker.target[:12], (booted or "nothing")[:12])
            self._write(self.failed_file, "\n".join([*self.failed()[-KEEP_FAILED:], marker.target]) + "\n")
        elif booted == marker.target:
            log.info("auto-update to %s: done, reboot slot released", marker.target[:12])
        else:
            log.info("auto-update to %s: given up for a rollout, reboot slot released", marker.target[:12])
        self.marker_file.unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Write atomically (a crash leaves the old file or the new one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
