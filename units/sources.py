"""Any app spec on disk → `specs.app.App`: Compose/geard/native files through `specs.load_app`,
Quadlet files (or a directory of them) through `units.from_quadlet`.

Side effects: reads the files (and, for Compose, the `.env` file and environment, as `load_app`
does). Everything else is pure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from specs.app import App
from specs.errors import Location, SpecError
from specs.loader import default_app_name, load_app
from units.from_quadlet import QUADLET_EXTENSIONS, is_quadlet_file, quadlet_to_app

__all__ = ["load_any", "load_any_with_warnings", "group_paths"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 text: {e.reason}", where=Location(str(path))) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror or e}", where=Location(str(path))) from None


def _quadlet_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            for q in sorted(p.iterdir()):
                if q.is_dir() and q.name.endswith(tuple(f"{ext}.d" for ext in QUADLET_EXTENSIONS)):
                    # never silently dropped: Fusion does not merge Quadlet drop-ins
                    raise SpecError(f"unsupported: drop-in directory ({q})", where=Location(str(q)))
                if q.is_file() and is_quadlet_file(q.name):
                    files.append(q)
        else:
            files.append(p)
    return files


def group_paths(paths: Sequence[str | Path]) -> list[list[Path]]:
    """Which paths make one app each: every Quadlet file named together is one app, a directory is
    one app, any other file is an app of its own. Order is kept (Quadlet files where the first is)."""
    groups: list[list[Path]] = []
    quadlet: list[Path] | None = None
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            groups.append([p])
        elif is_quadlet_file(p.name):
            if quadlet is None:
                quadlet = []
                groups.append(quadlet)
            quadlet.append(p)
        else:
            groups.append([p])
    return groups


def load_any_with_warnings(
    paths: Sequence[str | Path], env: Mapping[str, str] | None = None
) -> tuple[App, list[str]]:
    """One app from ``paths`` (see :func:`group_paths`), and warnings for a person."""
    ps = [Path(p) for p in paths]
    if not ps:
        raise SpecError("no file given")
    if len(ps) == 1 and not ps[0].is_dir() and not is_quadlet_file(ps[0].name):
        return load_app(ps[0], env=env), []
    if not all(p.is_dir() or is_quadlet_file(p.name) for p in ps):
        raise SpecError(
            "only Quadlet files (" + ", ".join(QUADLET_EXTENSIONS) + ") or one directory of them make one app; "
            "give other spec files one at a time",
            where=Location(str(ps[0])),
        )
    files = _quadlet_files(ps)
    first = ps[0]
    base = first if first.is_dir() else first.parent
    name = default_app_name(os.path.basename(os.path.abspath(base)) or "app")
    return quadlet_to_app({str(f): _read(f) for f in files}, app_name=name)


def load_any(paths: Sequence[str | Path], env: Mapping[str, str] | None = None) -> App:
    """One app from ``paths``: a Compose/geard/native file, or Quadlet files, or a directory of them."""
    return load_any_with_warnings(paths, env)[0]
