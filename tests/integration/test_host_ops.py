"""Host operations on real OSTree sysroots (tmpfs), with the fast busybox tree.

A session repo holds versions 1, 2 and 3 of the tree: 1 -> 2 upgrades `hello`, removes `gone`,
adds `new`; 3 changes a file only.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from common.runner import run
from host.tree import layering, ops
from host.tree import ostree as ot
from host.tree.commitobj import read_commit
from host.tree.compose import compose
from host.tree.ostree import TreeError
from host.tree.status import parse_show

pytestmark = pytest.mark.integration
REF = "fusion/test/x86_64/busybox"


@pytest.fixture(scope="session")
def tree_repo(session_tmpfs: Path, make_deb, busybox_treefile) -> dict[str, object]:
    build_deb, write_busybox_treefile = make_deb, busybox_treefile
    folder = session_tmpfs / "trees"
    folder.mkdir()
    repo, cache = session_tmpfs / "repo", session_tmpfs / "cache"
    h1, gone = build_deb(folder, "hello", "1.0"), build_deb(folder, "gone", "3")
    h2, new = build_deb(folder, "hello", "1.1"), build_deb(folder, "new", "0.1")
    c = {}
    c["1"] = compose(write_busybox_treefile(folder, version="1", debs=[h1, gone],
                                            files={"/etc/motd": "v1\n", "/etc/app.conf": "x=1\n"}), repo, cache_dir=cache)
    c["2"] = compose(write_busybox_treefile(folder, version="2", debs=[h2, new],
                                            files={"/etc/motd": "v2\n", "/etc/app.conf": "x=1\n"}), repo, cache_dir=cache)
    c["3"] = compose(write_busybox_treefile(folder, version="3", debs=[h2, new],
                                            files={"/etc/motd": "v3\n", "/etc/app.conf": "x=1\n"}), repo, cache_dir=cache)
    return {"repo": repo, "url": f"file://{repo}", "commits": c, "folder": folder}


def _repoint(tree_repo, version: str) -> None:
    """Move the ref back to ``version`` (so a test can upgrade to a later one)."""
    csum = tree_repo["commits"][version].checksum
    run(["ostree", f"--repo={tree_repo['repo']}", "refs", "--force", f"--create={REF}", csum])


@pytest.fixture
def sysroot_v1(tmpfs_dir: Path, tree_repo) -> Path:
    ops.init(tmpfs_dir, tree_repo["url"], REF, version="1")
    return tmpfs_dir


def _etc(sysroot: Path, dep) -> Path:
    return ops.deployment_path(sysroot, dep) / "etc"


def _assert_default_read_like_ostree(sysroot: Path) -> None:
    """The default deployment read from the boot loader entries (what `upgrade` starts from) is the
    first one `ostree admin status` lists."""
    assert ops._offline_default(sysroot, {}) == ops.status(sysroot)[0]


def test_new_user_flow_through_the_cli(tmpfs_dir, tree_repo, fusion):
    sysroot = tmpfs_dir
    r = fusion("host", "init", "--sysroot", sysroot, "--remote", tree_repo["url"], "--ref", REF, "--version", "1")
    assert r.returncode == 0, r.stderr
    r = fusion("host", "status", "--sysroot", sysroot, "--json")
    doc = json.loads(r.stdout)
    (d,) = doc["deployments"]
    for key in ("id", "osname", "serial", "checksum", "base-checksum", "version", "timestamp", "origin", "booted",
                "staged", "pending", "rollback", "pinned", "unlocked", "packages", "requested-local-packages"):
        assert key in d
    assert d["version"] == "1" and d["origin"] == f"origin:{REF}" and d["booted"] is False
    assert d["checksum"] == tree_repo["commits"]["1"].checksum and isinstance(d["timestamp"], int)
    # change a config file, then upgrade: the change stays, config-diff shows it
    dep = ops.default_deployment(sysroot)
    with (_etc(sysroot, dep) / "app.conf").open("a") as fh:
        fh.write("local=1\n")
    (_etc(sysroot, dep) / "added.conf").write_text("mine\n")
    assert fusion("host", "config-diff", "--sysroot", sysroot).stdout.splitlines() == \
        ["A /etc/added.conf", "M /etc/app.conf"]
    r = fusion("host", "upgrade", "--sysroot", sysroot)
    assert r.returncode == 0, r.stderr
    assert "Upgraded:\n  hello 1.0 -> 1.1" in r.stdout and "Removed:\n  gone-3" in r.stdout \
        and "Added:\n  new-0.1" in r.stdout
    new = ops.default_deployment(sysroot)
    assert new.version == "3"
    assert (_etc(sysroot, new) / "app.conf").read_text() == "x=1\nlocal=1\n"
    assert (_etc(sysroot, new) / "motd").read_text() == "v3\n"
    assert "M /etc/app.conf" in fusion("host", "config-diff", "--sysroot", sysroot).stdout
    text = fusion("host", "status", "--sysroot", sysroot).stdout
    assert "Version: 3" in text and "Version: 1" in text and "(default)" in text
    # roll back: version 1 is the default again, with the changed file
    r = fusion("host", "rollback", "--sysroot", sysroot)
    assert r.returncode == 0, r.stderr
    assert "Downgraded:\n  hello 1.1 -> 1.0" in r.stdout
    back = ops.default_deployment(sysroot)
    assert back.version == "1" and (_etc(sysroot, back) / "app.conf").read_text() == "x=1\nlocal=1\n"
    assert "M /etc/app.conf" in fusion("host", "config-diff", "--sysroot", sysroot).stdout
    assert [d.version for d in ops.status(sysroot)] == ["1", "3"]
    _assert_default_read_like_ostree(sysroot)  # after a reorder by write_deployments
    # nothing is booted in a test sysroot: no reboot is pending
    assert fusion("host", "reboot-required", "--sysroot", sysroot).returncode == 0


def test_upgrade_check_download_only_and_nothing_to_do(sysroot_v1, tree_repo, fusion):
    r = fusion("host", "upgrade", "--check", "--sysroot", sysroot_v1)
    assert r.returncode == 0 and "Available: 3" in r.stdout
    change = ops.upgrade(sysroot_v1, download_only=True)
    assert change.changed and [d.version for d in ops.status(sysroot_v1)] == ["1"]
    ops.upgrade(sysroot_v1)
    assert fusion("host", "upgrade", "--check", "--sysroot", sysroot_v1).returncode == 77
    r = fusion("host", "upgrade", "--sysroot", sysroot_v1)
    assert r.returncode == 0 and "No upgrade available." in r.stdout


def test_deploy_version_checksum_and_unknown(sysroot_v1, tree_repo):
    assert ops.deploy(sysroot_v1, "2").new.version == "2"
    csum = tree_repo["commits"]["3"].checksum
    assert ops.deploy(sysroot_v1, csum[:10]).new.checksum == csum
    # the same commit again, now following the ref (no override): a second deployment of it
    again = ops.upgrade(sysroot_v1).new
    assert again.checksum == csum and again.serial == 1 and again.override_commit is None
    assert again == ops.status(sysroot_v1)[0]
    before = ops.status(sysroot_v1)
    with pytest.raises(TreeError, match="no version or commit '9' in origin:") as e:
        ops.deploy(sysroot_v1, "9")
    assert "3, 2, 1" in (e.value.hint or "")
    assert ops.status(sysroot_v1) == before
    # an upgrade after a deploy by version goes to the latest again
    ops.deploy(sysroot_v1, "1")
    assert ops.upgrade(sysroot_v1).new.version == "3"


def test_commit_objects_and_refs_read_as_ostree_reads_them(sysroot_v1, tree_repo):
    """The file readers (commitobj, ref files) give what `ostree show` / `ostree rev-parse` print."""
    for repo in (tree_repo["repo"], ops.repo_path(sysroot_v1)):
        objects = sorted(Path(repo, "objects").glob("*/*.commit"))
        assert objects
        for obj in objects:
            csum = obj.parent.name + obj.name.removesuffix(".commit")
            mine = read_commit(repo, csum)
            theirs = parse_show(run(["ostree", f"--repo={repo}", "show", csum]).stdout)
            assert mine is not None and replace(mine, metadata={}) == theirs
            key = run(["ostree", f"--repo={repo}", "show", "--print-metadata-key=fusion.packages", csum])
            assert mine.metadata["fusion.packages"] == key.stdout.strip().strip("'")
    repo = ops.repo_path(sysroot_v1)
    for ref in (f"origin:{REF}", REF, "origin:no/such/ref"):
        out = run(["ostree", f"--repo={repo}", "rev-parse", ref], check=False)
        assert ot.rev_parse(repo, ref) == (out.stdout.strip() if out.returncode == 0 else None)


def test_at_most_two_deployments_pin_and_cleanup(sysroot_v1, fusion):
    for v in ("2", "3", "1", "2"):
        change = ops.deploy(sysroot_v1, v)
        assert change.new == ops.status(sysroot_v1)[0]  # as `ostree admin status` tells it
        _assert_default_read_like_ostree(sysroot_v1)
        assert len(ops.status(sysroot_v1)) <= 2
    assert fusion("host", "pin", "1", "--sysroot", sysroot_v1).returncode == 0
    pinned = ops.status(sysroot_v1)[1]
    assert pinned.pinned
    ops.pin(sysroot_v1, 0)
    _assert_default_read_like_ostree(sysroot_v1)
    ops.pin(sysroot_v1, 0, False)
    assert ops.deploy(sysroot_v1, "3").new == ops.status(sysroot_v1)[0]
    deps = ops.status(sysroot_v1)
    assert len(deps) == 3 and any(d.pinned and d.checksum == pinned.checksum for d in deps)
    assert fusion("host", "cleanup", "--sysroot", sysroot_v1).returncode == 0
    assert len(ops.status(sysroot_v1)) == 3  # default, rollback, pinned
    r = fusion("host", "cleanup", "--rollback", "--sysroot", sysroot_v1)
    assert r.returncode == 0 and "Removed 1 deployment" in r.stdout
    deps = ops.status(sysroot_v1)
    assert [d.version for d in deps] == ["3", pinned.version] and deps[1].pinned
    assert fusion("host", "unpin", "1", "--sysroot", sysroot_v1).returncode == 0
    assert not ops.status(sysroot_v1)[1].pinned


def test_rebase_to_another_ref(sysroot_v1, tree_repo, busybox_treefile):
    other = "fusion/test/x86_64/other"
    compose(busybox_treefile(tree_repo["folder"], version="7", ref=other, name="other.yaml"),
            tree_repo["repo"], cache_dir=tree_repo["repo"].parent / "cache")
    change = ops.rebase(sysroot_v1, other)
    assert change.new.version == "7" and change.new.origin == f"origin:{other}"
    assert ops.upgrade(sysroot_v1).message == "No upgrade available."


def test_layered_package_survives_upgrade_and_uninstall(sysroot_v1, tree_repo, fusion, tmp_path, make_deb):
    deb = make_deb(tmp_path, "extra", "0.5", {"/usr/bin/extra-tool": "#!/bin/sh\necho extra\n",
                                               "/etc/extra.conf": "e=1\n"})
    r = fusion("host", "install", deb, "--sysroot", sysroot_v1)
    assert r.returncode == 0, r.stderr
    assert "Added:\n  extra-0.5" in r.stdout
    dep = ops.default_deployment(sysroot_v1)
    root = ops.deployment_path(sysroot_v1, dep)
    assert dep.layered_packages == ("extra",) and dep.base_checksum == tree_repo["commits"]["1"].checksum
    assert (root / "usr/bin/extra-tool").exists() and (root / "etc/extra.conf").read_text() == "e=1\n"
    assert "extra 0.5" in (root / "usr/share/fusion/packages.txt").read_text()
    assert "Package: extra" in (root / "usr/lib/sysimage/dpkg/status").read_text()
    # the upgrade re-applies it on the new base
    change = ops.upgrade(sysroot_v1)
    new = change.new
    assert new == ops.status(sysroot_v1)[0]
    _assert_default_read_like_ostree(sysroot_v1)
    assert new.version == "3" and new.layered_packages == ("extra",)
    assert new.base_checksum == tree_repo["commits"]["3"].checksum
    root = ops.deployment_path(sysroot_v1, new)
    assert (root / "usr/bin/extra-tool").exists() and (root / "etc/motd").read_text() == "v3\n"
    assert "LayeredPackages: extra" in fusion("host", "status", "--sysroot", sysroot_v1).stdout
    # uninstall goes back to the plain base
    change = layering.uninstall(sysroot_v1, ["extra"])
    assert change.new.checksum == tree_repo["commits"]["3"].checksum and change.diff.removed == [("extra", "0.5")]
    assert not (ops.deployment_path(sysroot_v1, change.new) / "usr/bin/extra-tool").exists()
    with pytest.raises(TreeError, match="not layered: extra"):
        layering.uninstall(sysroot_v1, ["extra"])


def test_errors_are_one_line_and_leave_the_default(sysroot_v1, tree_repo, fusion, tmp_path):
    before = ops.status(sysroot_v1)
    # not a sysroot
    r = fusion("host", "status", "--sysroot", tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "not an OSTree sysroot" in r.stderr
    # unknown version
    r = fusion("host", "deploy", "42", "--sysroot", sysroot_v1)
    assert r.returncode == 1 and "no version or commit '42'" in r.stderr and "hint:" in r.stderr
    # not a .deb
    junk = tmp_path / "junk.deb"
    junk.write_text("no")
    r = fusion("host", "install", junk, "--sysroot", sysroot_v1)
    assert r.returncode == 1 and "not a .deb package" in r.stderr
    # a missing remote
    run(["ostree", f"--repo={ops.repo_path(sysroot_v1)}", "remote", "delete", "origin"])
    r = fusion("host", "upgrade", "--sysroot", sysroot_v1)
    assert r.returncode == 1 and 'Remote "origin" not found' in r.stderr and "hint:" in r.stderr
    assert ops.status(sysroot_v1) == before
    # a corrupt remote repository: objects of the upgrade are damaged
    ops.init(sysroot_v1, tree_repo["url"], REF, deploy=False)
    broken = tmp_path / "broken"
    run(["cp", "-a", str(tree_repo["repo"]), str(broken)])
    for obj in (broken / "objects").rglob("*.filez"):
        obj.write_bytes(b"garbage")
    ops.init(sysroot_v1, f"file://{broken}", REF, deploy=False)
    r = fusion("host", "upgrade", "--sysroot", sysroot_v1)
    assert r.returncode == 1 and r.stderr.startswith("error: cannot pull")
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert ops.status(sysroot_v1) == before


def test_init_with_a_missing_repository(tmpfs_dir, fusion, tmp_path):
    r = fusion("host", "init", "--sysroot", tmpfs_dir, "--remote", f"file://{tmp_path}/nowhere", "--ref", REF)
    assert r.returncode == 1 and r.stderr.startswith("error: cannot pull")
    assert ops.status(tmpfs_dir) == []
    r = fusion("host", "upgrade", "--sysroot", tmpfs_dir)
    assert r.returncode == 1 and "has no deployment" in r.stderr and "hint: run `fusion host init" in r.stderr


def test_no_space_left_keeps_the_default(tmp_path, tree_repo, fusion):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(tiny)])
    try:
        ops.init(tiny, tree_repo["url"], REF, version="1")
        before = ops.status(tiny)
        filler = tiny / "filler"
        run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k", "count=1000"], check=False)
        r = fusion("host", "upgrade", "--sysroot", tiny)
        assert r.returncode == 1 and r.stderr.startswith("error: ")
        assert "space" in r.stderr
        filler.unlink()
        assert ops.status(tiny) == before
        assert ops.upgrade(tiny).new.version == "3"
    finally:
        run(["umount", "-l", str(tiny)], check=False)
