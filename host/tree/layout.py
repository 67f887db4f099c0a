"""Turn a built root filesystem into the layout OSTree deploys.

Side effects: moves and deletes files under the given root (a scratch copy). What it does:
``/etc`` -> ``/usr/etc``; the dpkg database -> ``/usr/lib/sysimage/dpkg`` (``/var/lib/dpkg`` becomes
a link made at boot) and a package inventory at ``/usr/share/fusion/packages.txt``; ``/var`` emptied,
its directories recreated at boot by ``/usr/lib/tmpfiles.d/fusion-var.conf``; empty ``/home``,
``/srv``, ``/opt``, ``/mnt``, ``/media``, ``/root`` and ``/usr/local`` become links into ``/var``;
a kernel moved to (or a placeholder made at) ``/usr/lib/modules/<ver>/vmlinuz`` + ``initramfs.img``;
``/boot``, ``/dev``, ``/proc``, ``/sys``, ``/run``, ``/tmp`` emptied; ``/sysroot`` and the link
``/ostree -> sysroot/ostree`` added.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from host.tree.ostree import TreeError
from host.tree.packages import INVENTORY_PATH, Packages, inventory_text
from host.tree.rootfs import installed_packages

DPKG_DB = "usr/lib/sysimage/dpkg"
TMPFILES = "usr/lib/tmpfiles.d/fusion-var.conf"
PLACEHOLDER_KERNEL = "0.0.0-fusion-placeholder"
# Top-level folders that hold per-host data: linked into /var when the tree ships nothing there.
_VAR_LINKS = {"home": "var/home", "srv": "var/srv", "opt": "var/opt", "mnt": "var/mnt",
              "media": "run/media", "root": "var/roothome", "usr/local": "var/usrlocal"}


def _has_files(d: Path) -> bool:
    return any(not p.is_dir() or p.is_symlink() for p in d.rglob("*"))


def _clear(d: Path) -> None:
    if d.is_symlink() or d.is_file():
        d.unlink()
    elif d.exists():
        for child in d.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    d.mkdir(exist_ok=True)


def _kernel(root: Path) -> str:
    modules = root / "usr/lib/modules"
    modules.mkdir(parents=True, exist_ok=True)
    for vmlinuz in sorted((root / "boot").glob("vmlinuz-*")):
        ver = vmlinuz.name.removeprefix("vmlinuz-")
        (modules / ver).mkdir(exist_ok=True)
        shutil.move(vmlinuz, modules / ver / "vmlinuz")
        initrd = root / "boot" / f"initrd.img-{ver}"
        if initrd.exists():
            shutil.move(initrd, modules / ver / "initramfs.img")
    for vmlinuz in sorted(modules.glob("*/vmlinuz")):
        initramfs = vmlinuz.parent / "initramfs.img"
        if not initramfs.exists():
            initramfs.write_bytes(b"fusion placeholder initramfs: hosts boot with systemd-nspawn\n")
        return vmlinuz.parent.name
    d = modules / PLACEHOLDER_KERNEL
    d.mkdir(parents=True, exist_ok=True)
    (d / "vmlinuz").write_bytes(b"fusion placeholder kernel: hosts boot with systemd-nspawn\n")
    (d / "initramfs.img").write_bytes(b"fusion placeholder initramfs: hosts boot with systemd-nspawn\n")
    return PLACEHOLDER_KERNEL


def _tmpfiles_for_var(root: Path) -> list[str]:
    """tmpfiles.d lines recreating /var's folders and links (files in /var are dropped)."""
    lines = []
    var = root / "var"
    for dirpath, dirnames, filenames in os.walk(var):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            if rel == "/var/lib/dpkg" or rel.startswith("/var/lib/dpkg/"):
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                lines.append(f"L {rel} - - - - {os.readlink(p)}")
            elif stat.S_ISDIR(st.st_mode):
                lines.append(f"d {rel} {stat.S_IMODE(st.st_mode):04o} {st.st_uid} {st.st_gid} - -")
    return lines


def convert(root: Path, *, extra_tmpfiles: list[str] | None = None) -> Packages:
    """Give ``root`` the OSTree layout in place; returns the installed packages (the inventory)."""
    etc, usr_etc = root / "etc", root / "usr/etc"
    if not etc.is_dir() or etc.is_symlink():
        raise TreeError(f"{root}: the tree has no /etc folder")
    if usr_etc.exists():
        raise TreeError(f"{root}: the tree already has /usr/etc", hint="a tree ships its config in /etc")
    packages = installed_packages(root)
    # the package database and inventory live in /usr, read-only like the rest of the OS
    db = root / DPKG_DB
    db.parent.mkdir(parents=True, exist_ok=True)
    if (root / "var/lib/dpkg").is_dir():
        shutil.move(root / "var/lib/dpkg", db)
    inventory = root / INVENTORY_PATH
    inventory.parent.mkdir(parents=True, exist_ok=True)
    inventory.write_text(inventory_text(packages))
    # /var: recreated at boot from tmpfiles.d
    for name, target in _VAR_LINKS.items():
        d = root / name
        if d.is_dir() and not d.is_symlink() and not _has_files(d):
            shutil.rmtree(d)
            d.symlink_to(os.path.relpath(root / target, d.parent))
    lines = ["# Made by `fusion tree compose`: /var of the tree, recreated at boot (OSTree ships /var empty)."]
    lines += _tmpfiles_for_var(root)
    lines.append(f"L /var/lib/dpkg - - - - /{DPKG_DB}")
    for name, target in _VAR_LINKS.items():
        if (root / name).is_symlink() and target.startswith("var/"):
            mode = "0700" if name == "root" else "0755"
            lines.append(f"d /{target} {mode} 0 0 - -")
    lines += extra_tmpfiles or []
    tmpfiles = root / TMPFILES
    tmpfiles.parent.mkdir(parents=True, exist_ok=True)
    tmpfiles.write_text("\n".join(lines) + "\n")
    _clear(root / "var")
    # /etc -> /usr/etc; a fresh machine-id at first boot
    if (etc / "machine-id").exists():
        (etc / "machine-id").write_text("")
    shutil.move(etc, usr_etc)
    _kernel(root)
    for name in ("boot", "dev", "proc", "sys", "run", "tmp"):
        _clear(root / name)
    (root / "tmp").chmod(0o1777)
    (root / "sysroot").mkdir(exist_ok=True)
    ostree_link = root / "ostree"
    if ostree_link.is_symlink() or ostree_link.exists():
        _clear(ostree_link)
        shutil.rmtree(ostree_link)
    ostree_link.symlink_to("sysroot/ostree")
    _drop_special_files(root)
    if not any((root / p).exists() for p in ("usr/lib/os-release", "usr/etc/os-release")):
        raise TreeError(f"{root}: the tree has no os-release", hint="OSTree needs /usr/lib/os-release")
    return packages


def _drop_special_files(root: Path) -> None:
    """OSTree commits only regular files, folders and links: drop sockets, fifos, device nodes."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            mode = p.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
                p.unlink()
