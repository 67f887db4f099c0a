"""The boot order of an offline sysroot, read from the boot loader entries ostree writes.

``ostree admin deploy`` (and ``write_deployments``) write one Boot Loader Specification entry per
deployment, ``boot/loader/entries/ostree-N-OS.conf``; the entry with the highest ``version`` boots
first (libostree sorts them so when it loads a sysroot), and its ``ostree=`` kernel argument is a
symlink, relative to the sysroot, to the deployment's folder ``ostree/deploy/OS/deploy/CSUM.SERIAL``.

This answers "which deployment boots next" without starting ``ostree admin status`` (what
``fusion host upgrade`` needs first). It is only for offline sysroots (not this system's ``/``):
a booted system also has staged deployments and a booted one, which ``ostree admin status`` knows.
Anything unexpected returns None: the caller then asks ``ostree admin status``.

Side effects: reads files and symlinks under the sysroot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BootEntry:
    version: int
    osname: str
    checksum: str
    serial: int


def parse_entry(text: str) -> tuple[int, str] | None:
    """``(version, ostree= argument)`` of a boot loader entry; None when it has not both."""
    version, arg = None, None
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "version" and value.strip().isdigit():
            version = int(value.strip())
        elif key == "options":
            arg = next((o.removeprefix("ostree=") for o in value.split() if o.startswith("ostree=")), None)
    return (version, arg) if version is not None and arg else None


def boot_entries(sysroot: Path) -> list[BootEntry] | None:
    """The deployments of the current boot loader configuration, first to boot first."""
    folder = Path(sysroot) / "boot" / "loader" / "entries"
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("ostree-") and n.endswith(".conf"))
    except OSError:
        return None
    out = []
    for name in names:
        try:
            parsed = parse_entry((folder / name).read_text())
        except OSError:
            return None
        if parsed is None:
            return None
        version, arg = parsed
        # /ostree/boot.N/OS/BOOTCSUM/SERIAL -> ../../../deploy/OS/deploy/CSUM.SERIAL
        try:
            target = os.path.realpath(Path(sysroot) / arg.lstrip("/"))
        except OSError:
            return None
        folder_name, deploy, osname = Path(target).name, Path(target).parent, Path(target).parent.parent.name
        csum, _, serial = folder_name.partition(".")
        if (deploy.name != "deploy" or len(csum) != 64 or not serial.isdigit()
                or Path(target).parents[2] != Path(os.path.realpath(Path(sysroot) / "ostree" / "deploy"))
                or not os.path.isdir(target)):
            return None
        out.append(BootEntry(version, osname, csum, int(serial)))
    if len({e.version for e in out}) != len(out):
        return None
    return sorted(out, key=lambda e: -e.version)
