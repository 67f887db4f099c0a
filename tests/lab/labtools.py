"""Helpers the lab tests share (imported as ``labtools``: pytest puts this folder on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lab import ops
from lab.state import LabState

T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 90, every: float = 0.5) -> T:
    """``fn()``'s first true value, polled every ``every`` seconds for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def explain_hosts(lab: LabState, hosts: list[str] | None = None, app: str = "guestbook") -> str:
    """What each host runs and says, for a failure message: its containers, the app's units, the
    agent's and mesh proxies' units, and their journals."""
    script = (f"podman ps -a; systemctl list-units --all --no-pager 'fusion-*' '{app}-*'; "
              f"journalctl --no-pager -n 60 -u fusion-agent -u 'fusion-mesh-*' -u '{app}-*'")
    names = hosts if hosts is not None else [h.name for h in lab.hosts]
    return "\n".join(f"--- {n}\n" + ops.run_in(lab, n, ["/bin/sh", "-c", script], check=False) for n in names)
