"""Getting a host tree into the lab's OSTree repo.

Two ways:

- :func:`compose_treefile` composes a treefile with ``host.tree.compose`` (the project's composer;
  it caches its own work) into a cache repo, then the lab pulls the commit from there;
- :func:`builtin_tree` is the lab's own minimal tree when no treefile is given and the composer is
  not available: a cached ``debootstrap`` of trixie (systemd, podman, crun, nftables, ostree,
  python3) put into the OSTree layout with the raw commands of MACHINE-NOTES.

:func:`commit_overlay` commits a small change on top of a commit (new files, a version): a fast
way to publish a new tree version in tests.

Side effects: debootstrap, ostree commands, files under the cache dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.runner import run

TRIXIE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "podman", "crun", "nftables", "ostree",
                   "python3", "iproute2")
KERNEL_VERSION = "6.1.0-fusion-lab"


def ensure_repo(repo: Path) -> None:
    if not (repo / "config").exists():
        repo.mkdir(parents=True, exist_ok=True)
        run(["ostree", f"--repo={repo}", "init", "--mode=archive"])


def rev_parse(repo: Path, ref: str) -> str | None:
    r = run(["ostree", f"--repo={repo}", "rev-parse", ref], check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def commit_version(repo: Path, checksum: str) -> str | None:
    r = run(["ostree", f"--repo={repo}", "show", "--print-metadata-key=version", checksum], check=False)
    if r.returncode != 0:
        return None
    return r.stdout.strip().strip("'") or None


def _debootstrap(cache: Path) -> Path:
    root = cache / "lab" / "rootfs-trixie"
    if (root / "usr" / "bin" / "systemctl").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", f"--include={','.join(TRIXIE_PACKAGES)}", "trixie", str(tmp)],
        timeout=1800)
    os.replace(tmp, root)
    return root


def ostree_layout(root: Path) -> None:
    """Make a bootstrapped root what OSTree wants: /usr/etc, empty /var, a placeholder kernel."""
    if (root / "etc").is_dir() and not (root / "usr" / "etc").exists():
        (root / "etc").rename(root / "usr" / "etc")
    (root / "usr" / "etc" / "machine-id").write_text("")  # each host makes its own
    shutil.rmtree(root / "var", ignore_errors=True)
    for d in ("var", "dev", "proc", "sys", "run", "tmp", "boot", "sysroot"):
        p = root / d
        if p.is_dir() and d in ("dev", "proc", "sys", "run", "tmp", "boot"):
            shutil.rmtree(p)
        p.mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    if not (root / "ostree").is_symlink():
        (root / "ostree").symlink_to("sysroot/ostree")
    kdir = root / "usr" / "lib" / "modules" / KERNEL_VERSION
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "vmlinuz").write_text("placeholder kernel: lab hosts boot with systemd-nspawn\n")
    (kdir / "initramfs.img").write_text("placeholder initramfs\n")


def builtin_tree(cache: Path, ref: str, version: str = "1") -> tuple[Path, str]:
    """The lab's own host tree, committed (once) into ``<cache>/lab/repo``. Returns (repo, checksum)."""
    repo = cache / "lab" / "repo"
    ensure_repo(repo)
    csum = rev_parse(repo, ref)
    if csum:
        return repo, csum
    base = _debootstrap(cache)
    with tempfile.TemporaryDirectory(dir=cache / "lab", prefix="layout.") as work:
        root = Path(work) / "root"
        run(["cp", "-a", "--reflink=auto", str(base), str(root)])
        ostree_layout(root)
        run(["ostree", f"--repo={repo}", "commit", f"--branch={ref}", f"--tree=dir={root}",
             f"--add-metadata-string=version={version}", "--subject=fusion lab host tree",
             "--no-xattrs"], timeout=900)
    csum = rev_parse(repo, ref)
    assert csum is not None
    return repo, csum


def commit_overlay(repo: Path, ref: str, files: dict[str, str], version: str,
                   modes: dict[str, int] | None = None) -> str:
    """Commit ``files`` (tree path -> content) on top of ``ref``'s commit; returns the new checksum."""
    with tempfile.TemporaryDirectory(prefix="fusion-overlay.") as work:
        os.chmod(work, 0o755)  # it becomes the tree's / : keep the usual mode
        for path, content in files.items():
            p = Path(work) / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
            p.chmod((modes or {}).get(path, 0o644))
        run(["ostree", f"--repo={repo}", "commit", f"--branch={ref}", f"--tree=ref={ref}",
             f"--tree=dir={work}", f"--add-metadata-string=version={version}",
             f"--subject=fusion lab host tree {version}", "--owner-uid=0", "--owner-gid=0",
             "--no-xattrs"])
    csum = rev_parse(repo, ref)
    assert csum is not None
    return csum


def pull_local(src: Path, dest: Path, ref: str) -> str:
    ensure_repo(dest)
    run(["ostree", f"--repo={dest}", "pull-local", str(src), ref], timeout=900)
    csum = rev_parse(dest, ref)
    assert csum is not None
    return csum


def update_summary(repo: Path) -> None:
    run(["ostree", f"--repo={repo}", "summary", "-u"])
