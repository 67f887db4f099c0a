"""A "booted" host without a VM: the deployment's folder as "/" in a private mount namespace.

``chroot`` into a real deployment with the sysroot at /sysroot, its /boot, and /run/ostree-booted:
``ostree admin status`` itself then reports that deployment as booted (``*``) and the new default as
pending. The machine's /usr, Python and this checkout are bound in so Fusion runs there. Every
mount lives in the namespace and disappears with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from common.runner import Result, run
from host.tree import ops
from host.tree.compose import compose

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REF = "fusion/test/x86_64/busybox"

BOOT = r"""
set -e
D="$1"; S="$2"; SRC="$3"; PY="$4"; REPO="$5"; shift 5
mount --rbind "$S" "$D/sysroot"
mount --bind "$S/boot" "$D/boot"
mount -t tmpfs tmpfs "$D/run"; touch "$D/run/ostree-booted"
mount -t tmpfs tmpfs "$D/tmp"; mkdir -p "$D/tmp/src"; mount --bind "$SRC" "$D/tmp/src"
mount -t tmpfs tmpfs "$D/var"; mkdir -p "$D/var/roothome" "$D/var/opt" "$D/var/home" "$D/var/srv"
case "$PY" in /usr|/usr/*) ;; *) mkdir -p "$D$PY"; mount --bind "$PY" "$D$PY" ;; esac
mkdir -p "$D$REPO"; mount --bind "$REPO" "$D$REPO"   # the remote (a file:// URL under /tmp)
mount --bind /usr "$D/usr"
mount -t proc proc "$D/proc"
mount --rbind /dev "$D/dev"
exec chroot "$D" /usr/bin/env PYTHONPATH=/tmp/src "$@"
"""


def booted_fusion(sysroot: Path, dep, repo: Path, *args: str) -> Result:
    """Run ``fusion ARGS`` as if ``dep`` of ``sysroot`` were the running system."""
    exe = Path(sys.executable)
    inner = f"/tmp/src/{exe.relative_to(ROOT)}" if exe.is_relative_to(ROOT) else str(exe)
    return run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", BOOT, "sh",
                str(ops.deployment_path(sysroot, dep)), str(sysroot), str(ROOT), sys.base_prefix, str(repo),
                inner, "-m", "cli", *args], check=False, timeout=120)


@pytest.fixture(scope="module")
def booted_repo(session_tmpfs: Path, make_deb, busybox_treefile) -> dict[str, object]:
    folder = session_tmpfs / "booted-trees"
    folder.mkdir()
    repo = session_tmpfs / "booted-repo"
    one = compose(busybox_treefile(folder, version="1", debs=[make_deb(folder, "hello", "1.0")]), repo,
                  cache_dir=session_tmpfs / "cache")
    two = compose(busybox_treefile(folder, version="2", debs=[make_deb(folder, "hello", "2.0")]), repo,
                  cache_dir=session_tmpfs / "cache")
    return {"url": f"file://{repo}", "repo": repo, "one": one, "two": two}


def test_booted_status_pending_reboot_required_and_rollback(tmpfs_dir, booted_repo):
    sysroot = tmpfs_dir
    ops.init(sysroot, booted_repo["url"], REF, version="1")
    running = ops.default_deployment(sysroot)
    repo = booted_repo["repo"]
    assert str(repo).startswith("/tmp/"), "the remote must be under /tmp to be bound into the chroot"
    r = booted_fusion(sysroot, running, repo, "host", "reboot-required", "--sysroot", "/")
    assert r.returncode == 0, r.stderr
    # the running host upgrades itself: the new deployment is pending until a reboot
    r = booted_fusion(sysroot, running, repo, "host", "upgrade")
    assert r.returncode == 0, r.stderr
    assert "Upgraded:\n  hello 1.0 -> 2.0" in r.stdout and 'Run "systemctl reboot"' in r.stdout
    r = booted_fusion(sysroot, running, repo, "host", "status", "--json")
    doc = json.loads(r.stdout)
    assert doc["booted"] is True
    pending, booted = doc["deployments"]
    assert pending["pending"] and not pending["booted"] and pending["version"] == "2"
    assert booted["booted"] and booted["version"] == "1"
    text = booted_fusion(sysroot, running, repo, "host", "status").stdout
    assert "● origin:" in text and "(pending)" in text
    assert booted_fusion(sysroot, running, repo, "host", "reboot-required").returncode == 77
    # rollback before rebooting: the running deployment is the default again
    r = booted_fusion(sysroot, running, repo, "host", "rollback")
    assert r.returncode == 0, r.stderr
    assert booted_fusion(sysroot, running, repo, "host", "reboot-required").returncode == 0
    assert ops.default_deployment(sysroot).checksum == running.checksum
