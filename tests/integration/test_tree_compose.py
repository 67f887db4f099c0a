"""`fusion tree compose` on the fast busybox tree: layout, metadata, skip-if-unchanged, deltas."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.runner import run
from host.tree.compose import compose
from host.tree.packages import PACKAGES_KEY, decode
from host.tree.status import parse_metadata_value

pytestmark = pytest.mark.integration
REF = "fusion/test/x86_64/busybox"


def _ls(repo: Path, rev: str, path: str) -> str:
    return run(["ostree", f"--repo={repo}", "ls", rev, path], check=False).stdout


def _cat(repo: Path, rev: str, path: str) -> str:
    return run(["ostree", f"--repo={repo}", "cat", rev, path]).stdout


def test_compose_layout_metadata_and_fusion_inside(tmp_path, make_deb, busybox_treefile):
    hello = make_deb(tmp_path, "hello", "1.0", {"/usr/share/hello/v": "1.0\n", "/etc/hello.conf": "a=1\n"})
    tf = busybox_treefile(tmp_path, version="1", debs=[hello])
    text = tf.read_text().replace("install-fusion: false", "install-fusion: true")
    text += "units:\n- name: hi.service\n  content: \"[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n\"\n"
    text += "enable: [hi.service]\npostprocess: echo post > /etc/post\n"
    tf.write_text(text)
    repo = tmp_path / "repo"
    r = compose(tf, repo, cache_dir=tmp_path / "cache")
    assert r.changed and r.version == "1" and r.ref == REF
    assert r.packages == {"hello": "1.0"}
    assert decode(run(["ostree", f"--repo={repo}", "show", f"--print-metadata-key={PACKAGES_KEY}", REF]).stdout) \
        == {"hello": "1.0"}
    assert parse_metadata_value(run(["ostree", f"--repo={repo}", "show", "--print-metadata-key=version",
                                     REF]).stdout) == "1"
    # the OSTree layout
    assert _cat(repo, REF, "/usr/etc/hello.conf") == "a=1\n"
    assert _cat(repo, REF, "/usr/etc/post") == "post\n"
    assert _cat(repo, REF, "/usr/etc/motd") == "version 1\n"
    assert "hi.service" in _ls(repo, REF, "/usr/etc/systemd/system/multi-user.target.wants")
    assert _ls(repo, REF, "/etc") == ""  # no /etc at the top
    assert _ls(repo, REF, "/var").strip().startswith("d")
    assert len(_ls(repo, REF, "/var").strip().splitlines()) == 1  # empty /var
    assert "-> sysroot/ostree" in _ls(repo, REF, "/ostree")
    assert "vmlinuz" in _ls(repo, REF, "/usr/lib/modules/0.0.0-fusion-placeholder")
    assert _cat(repo, REF, "/usr/share/fusion/packages.txt") == "hello 1.0\n"
    assert "Package: hello" in _cat(repo, REF, "/usr/lib/sysimage/dpkg/status")
    assert "L /var/lib/dpkg" in _cat(repo, REF, "/usr/lib/tmpfiles.d/fusion-var.conf")
    # Fusion itself is in the tree
    assert "cli.main" in _cat(repo, REF, "/usr/bin/fusion")
    assert _ls(repo, REF, "/usr/lib/fusion/python/host/tree/ops.py")
    assert "__pycache__" not in run(["ostree", f"--repo={repo}", "ls", "-R", REF, "/usr/lib/fusion"]).stdout


def test_unchanged_tree_is_not_committed_and_delta_for_changes(tmp_path, make_deb, busybox_treefile):
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    v1 = busybox_treefile(tmp_path, version="1", debs=[make_deb(tmp_path, "hello", "1.0"),
                                                      make_deb(tmp_path, "gone", "3")])
    first = compose(v1, repo, cache_dir=cache)
    again = compose(v1, repo, cache_dir=cache)
    assert not again.changed and again.checksum == first.checksum and again.version == "1"
    v2 = busybox_treefile(tmp_path, version="2", debs=[make_deb(tmp_path, "hello", "1.1"),
                                                      make_deb(tmp_path, "new", "0.1")])
    second = compose(v2, repo, cache_dir=cache)
    assert second.changed and second.parent == first.checksum and second.delta
    assert second.diff.lines() == ["Upgraded:", "  hello 1.0 -> 1.1", "Removed:", "  gone-3", "Added:", "  new-0.1"]
    deltas = run(["ostree", f"--repo={repo}", "static-delta", "list"]).stdout
    assert f"{first.checksum}-{second.checksum}" in deltas
    log = run(["ostree", f"--repo={repo}", "log", REF]).stdout
    assert first.checksum in log and second.checksum in log


def test_cli_compose_prints_diff_and_treefile_errors(tmp_path, make_deb, busybox_treefile, fusion):
    repo = tmp_path / "repo"
    v1 = busybox_treefile(tmp_path, version="1", debs=[make_deb(tmp_path, "hello", "1.0")])
    r = fusion("tree", "compose", v1, "--repo", repo, "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert f"Committed {REF} version 1" in r.stdout
    v2 = busybox_treefile(tmp_path, version="2", debs=[make_deb(tmp_path, "hello", "2.0")])
    r = fusion("tree", "compose", v2, "--repo", repo, "--cache-dir", tmp_path / "cache")
    assert "Upgraded:\n  hello 1.0 -> 2.0" in r.stdout
    r = fusion("tree", "compose", v2, "--repo", repo, "--cache-dir", tmp_path / "cache")
    assert r.stdout.startswith("No change")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ref: fusion/x\nbootstrap: busybox\nfiles:\n  - path: /var/lib/x\n    content: y\n")
    r = fusion("tree", "compose", bad, "--repo", repo)
    assert r.returncode == 2
    assert f"error: {bad}:4:5: files[0].path:" in r.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text("ref: fusion/x\nbootstrap: busybox\nlocal-packages: [nope.deb]\n")
    r = fusion("tree", "compose", missing, "--repo", repo)
    assert r.returncode == 1 and "nope.deb: no such .deb file" in r.stderr
