"""The lab firmware finds a host's PID 1 among systemd-nspawn's children: only the init of a new
PID namespace counts, never a helper child (nspawn's outer child lives briefly before the
container's init). Real PID namespaces, made with unshare(1) as root."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lab import machine

pytestmark = pytest.mark.integration


def test_leader_is_the_init_of_a_new_pid_namespace_not_any_child() -> None:
    if os.geteuid() != 0:
        pytest.skip("PID namespaces need root")
    plain = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True)
    nested = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "30"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while machine.leader_pid(nested.pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        leader = machine.leader_pid(nested.pid)
        assert leader is not None and machine.is_init(leader)
        assert Path(f"/proc/{leader}/cmdline").read_text().startswith("sleep")
        assert machine.leader_pid(plain.pid) is None  # its child is no init
        assert not machine.is_init(plain.pid) and not machine.is_init(999_999_999)
    finally:
        for p in (plain, nested):
            os.killpg(p.pid, signal.SIGKILL)  # the whole group: no sleep is left behind
            p.wait(timeout=10)
