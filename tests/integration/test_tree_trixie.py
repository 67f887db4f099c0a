"""The real default host tree (Debian trixie: systemd, podman, ostree, Fusion) composed and deployed.

Slow on first run (debootstrap + apt, ~2 min); the debootstrap/apt cache in /var/cache/fusion is
shared with the lab, which builds the same tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.runner import run
from host.tree import ops
from host.tree.compose import DEFAULT_CACHE, compose
from specs.treefile import load_treefile

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

INSIDE = r"""
set -e
D="$1"; S="$2"; REPO="$3"; shift 3
mount --rbind "$S" "$D/sysroot"
mount --bind "$S/boot" "$D/boot"
mount --bind "$S/ostree/deploy/fusion/var" "$D/var"
mount -t tmpfs tmpfs "$D/run"; touch "$D/run/ostree-booted"
mount -t tmpfs tmpfs "$D/tmp"
mkdir -p "$D$REPO"; mount --bind "$REPO" "$D$REPO"   # the remote (a file:// URL under /tmp)
mount -t proc proc "$D/proc"
mount --rbind /dev "$D/dev"
exec chroot "$D" "$@"
"""


def test_trixie_host_tree(tmpfs_dir):
    if not Path("/usr/sbin/debootstrap").exists():
        pytest.skip("debootstrap is not installed (scripts/setup)")
    repo = tmpfs_dir / "repo"
    tf = load_treefile(ROOT / "examples/trees/fusion-host.yaml")
    first = compose(tf.model_copy(update={"version": "t1"}), repo, cache_dir=DEFAULT_CACHE)
    second = compose(tf.model_copy(update={"version": "t2", "packages": (*tf.packages, "less")}), repo,
                     cache_dir=DEFAULT_CACHE)
    assert first.changed and second.changed and second.delta
    assert [n for n, _ in second.diff.added] == ["less"]
    for pkg in ("systemd", "podman", "crun", "nftables", "ostree", "python3-pydantic", "python3-rich"):
        assert pkg in first.packages
    sysroot = tmpfs_dir / "sysroot"
    ops.init(sysroot, f"file://{repo}", tf.ref, version="t1")
    d = ops.default_deployment(sysroot)
    root = ops.deployment_path(sysroot, d)
    for path in ("usr/lib/systemd/systemd", "usr/bin/podman", "usr/libexec/podman/quadlet", "usr/bin/fusion",
                 "usr/lib/fusion/python/host/tree/ops.py", "etc/containers/containers.conf.d/50-fusion.conf"):
        assert (root / path).exists(), path
    assert (root / "etc/systemd/system/systemd-modules-load.service").resolve() == Path("/dev/null")
    # Python is byte-compiled with hash-based .pyc files (OSTree's mtime 0 breaks timestamp ones):
    # PEP 552 flags word 3 = checked hash
    for pyc in ("usr/lib/fusion/python/host/agent/__pycache__/main", "usr/lib/python3/dist-packages/pydantic/"
                "__pycache__/main"):
        found = list(root.glob(f"{pyc}.cpython-3*.pyc"))
        assert found and int.from_bytes(found[0].read_bytes()[4:8], "little") == 3, pyc
    # Fusion runs inside the host, on trixie's python3 and its Debian libraries, against its ostree
    inside = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", INSIDE, "sh",
              str(root), str(sysroot), str(repo)]
    r = run([*inside, "/usr/bin/fusion", "host", "status", "--json"], check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["booted"] is True and doc["deployments"][0]["version"] == "t1"
    r = run([*inside, "/usr/bin/fusion", "host", "upgrade", "--check"], check=False, timeout=120)
    assert r.returncode == 0 and "Available: t2" in r.stdout, r.stdout + r.stderr
