"""Shared fixtures for integration tests (real ostree, debootstrap, podman on this machine, as root).

- ``tmpfs_dir``: a fresh tmpfs mounted on a temporary folder, unmounted afterwards. OSTree
  sysroots must live on one (``ostree admin deploy`` freezes the filesystem holding /boot).
- ``make_deb(folder, name, version, files={path: text})``: build a small .deb with dpkg-deb.
- ``busybox_treefile(folder, version=..., debs=[...], files={...})``: write a fast busybox treefile.
- ``fusion(*args)``: run the real ``fusion`` command (a new process), returns the Result.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from common.runner import Result, run

ROOT = Path(__file__).resolve().parents[2]


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (mounts, ostree admin)")
    if shutil.which("ostree") is None:
        pytest.skip("ostree is not installed (scripts/setup)")


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh tmpfs (for OSTree sysroots), unmounted (lazily if busy) at teardown."""
    _need_root()
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0755", "tmpfs", str(mnt)])
    try:
        yield mnt
    finally:
        if run(["umount", str(mnt)], check=False).returncode != 0:
            run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="session")
def session_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tmpfs for the whole session (shared repos); unmounted at the end."""
    _need_root()
    mnt = tmp_path_factory.mktemp("session-tmpfs")
    run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "tmpfs", str(mnt)])
    try:
        yield mnt
    finally:
        if run(["umount", str(mnt)], check=False).returncode != 0:
            run(["umount", "-l", str(mnt)], check=False)


def build_deb(folder: Path, name: str, version: str, files: dict[str, str] | None = None) -> Path:
    """A minimal architecture-independent .deb holding ``files`` ({"/usr/share/x": "text"})."""
    files = files if files is not None else {f"/usr/share/{name}/version": f"{name} {version}\n"}
    src = folder / f"src-{name}-{version}"
    (src / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (src / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Fusion tests <t@example.invalid>\n"
        f"Description: test package {name}\n")
    for path, text in files.items():
        p = src / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    deb = folder / f"{name}_{version}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(src), str(deb)])
    return deb


@pytest.fixture(scope="session")
def make_deb() -> Callable[..., Path]:
    return build_deb


def write_busybox_treefile(folder: Path, *, version: str, debs: list[Path] | None = None,
                           files: dict[str, str] | None = None, ref: str = "fusion/test/x86_64/busybox",
                           name: str | None = None) -> Path:
    data: dict[str, object] = {
        "ref": ref, "version": version, "osname": "fusion", "bootstrap": "busybox",
        "install-fusion": False,
        "local-packages": [str(d) for d in (debs or [])],
        "files": [{"path": p, "content": c} for p, c in (files or {"/etc/motd": f"version {version}\n"}).items()],
    }
    tf = folder / (name or f"tree-{version}.yaml")
    tf.write_text(yaml.safe_dump(data, sort_keys=False))
    return tf


@pytest.fixture(scope="session")
def busybox_treefile() -> Callable[..., Path]:
    return write_busybox_treefile


def run_fusion(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return run([sys.executable, "-m", "cli", *[str(a) for a in args]], check=False, cwd=str(ROOT), env=env,
               timeout=600)


@pytest.fixture(scope="session")
def fusion() -> Callable[..., Result]:
    return run_fusion
