"""Install Fusion itself into a tree, so ``fusion host ...`` works inside a booted host.

Side effects: copies this checkout's Python packages into ``<root>/usr/lib/fusion/python`` (no
``__pycache__``), adds a ``.pth`` for Debian's python3 and a ``/usr/bin/fusion`` entry script. The
host's Debian packages provide the libraries (python3-pydantic, -yaml, -click, -rich).
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("specs", "units", "common", "host", "orchestrator", "lab", "cli")
DATA_SUFFIXES = (".py", ".yaml", ".json", ".service", ".conf", ".txt", ".container", ".sh")
TARGET = "usr/lib/fusion/python"

ENTRY = """#!/usr/bin/python3
# Fusion, installed into this OSTree tree by `fusion tree compose`.
import sys
sys.path.insert(0, "/usr/lib/fusion/python")
from cli.main import main
main()
"""


def source_root() -> Path:
    """The folder holding Fusion's top-level packages (this checkout, or an installed copy)."""
    return Path(__file__).resolve().parents[2]


def _fusion_version() -> str:
    try:
        return version("fusion")
    except PackageNotFoundError:
        return "0+unknown"


def install(root: Path, source: Path | None = None) -> list[str]:
    """Copy Fusion into ``root``; returns the packages copied."""
    src = source or source_root()
    dest = root / TARGET
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    copied = []
    for pkg in PACKAGES:
        if not (src / pkg / "__init__.py").exists():
            continue
        for f in sorted((src / pkg).rglob("*")):
            if "__pycache__" in f.parts or not f.is_file() or f.suffix not in DATA_SUFFIXES:
                continue
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
        copied.append(pkg)
    ver = _fusion_version()
    info = dest / f"fusion-{ver}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fusion\nVersion: {ver}\n")
    (info / "top_level.txt").write_text("\n".join(copied) + "\n")
    pth = root / "usr/lib/python3/dist-packages/fusion.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text(f"/{TARGET}\n")
    entry = root / "usr/bin/fusion"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(ENTRY)
    entry.chmod(0o755)
    return copied
