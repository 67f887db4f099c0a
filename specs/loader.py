"""One way in for every app spec: `load_app(path)` / `load_app_text(text, filename)` -> `App`.

Which format a file is in is decided by its content:

* JSON (``.json``, or text starting with ``{``) whose top level has a ``"fusion"`` key -> the native
  model (`specs.native`; ``{"fusion": "v1", "name": ..., "services": {...}}``).
* JSON whose top level has a ``Containers`` key in any letter case -> a geard deployment (`specs.geard`).
* any other JSON, and YAML (``.yaml``/``.yml`` or anything else) -> the Compose Specification
  (`specs.compose`).

Quadlet files (``.container``, ``.volume``, ``.network``, ``.pod``) are not handled here.

Errors: `SpecError` (one problem) or `SpecErrors` (several), both `InputError`s (exit code 2), each
rendered as ``file:line:col: key.path: what is wrong``. A file that cannot be read is a `SpecError`
without a line.

Side effects: `load_app` reads the file, its `.env` neighbour and `os.environ` (unless ``env`` is
given) and any env_files; `load_app_text` only reads env_files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from specs.app import App
from specs.compose import compose_to_app
from specs.errors import Location, SpecError
from specs.geard import geard_to_app, is_geard
from specs.interpolate import EnvFileError, default_environment
from specs.native import is_native, native_to_app
from specs.source import Doc, looks_like_json, parse_json, parse_yaml


def load_app(path: str | Path, env: Mapping[str, str] | None = None) -> App:
    """Load an app spec file. ``env`` is the interpolation environment; by default the process
    environment over the `.env` file next to the spec (Compose's rule)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 text: {e.reason}", where=Location(str(path))) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror or e}", where=Location(str(path))) from None
    if env is None:
        try:
            env = default_environment(p)
        except EnvFileError as e:
            raise SpecError(e.message, where=Location(str(p.parent / ".env"), e.line)) from None
        except OSError as e:
            raise SpecError(
                f"cannot read: {e.strerror or e}", where=Location(str(p.parent / ".env"))
            ) from None
    return load_app_text(text, str(path), env=env)


def load_app_text(
    text: str, filename: str, env: Mapping[str, str] | None = None, *, base_dir: Path | None = None
) -> App:
    """Load an app spec from text; ``filename`` names it in errors and gives the app's default name
    (its stem). Relative paths (env_file, bind mounts) are anchored at ``base_dir``, by default the
    file's directory made absolute. ``env`` (the interpolation environment) defaults to empty."""
    doc = parse_document(text, filename)
    env = env or {}
    if is_native(doc):
        return native_to_app(doc)
    if is_geard(doc):
        return geard_to_app(doc, default_name=default_app_name(filename))
    return compose_to_app(
        doc,
        env,
        default_name=default_app_name(filename),
        base_dir=(base_dir or Path(filename).parent).absolute(),
        read_text=lambda f: f.read_text(encoding="utf-8"),
    )


def parse_document(text: str, filename: str) -> Doc:
    """YAML or JSON text -> `Doc` (values with positions). A file not named ``.json`` that starts
    with ``{`` is read as JSON when it is valid JSON, and as YAML (a flow mapping) otherwise."""
    if filename.lower().endswith(".json"):
        return parse_json(text, filename)
    if looks_like_json(text, filename):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return parse_yaml(text, filename)
        return parse_json(text, filename)
    return parse_yaml(text, filename)


def default_app_name(filename: str) -> str:
    """The app name when the file names none: the file's stem, lower-cased, other characters as '-'."""
    stem = Path(filename).name.split(".")[0].lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_")
    return name[:63].rstrip("-_") or "app"
