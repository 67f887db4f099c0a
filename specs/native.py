"""The native model as plain JSON: `App` exactly as `App.model_dump(mode="json")` writes it, plus a
top-level ``"fusion": "v1"`` marker that tells the loader which format it is::

    {"fusion": "v1", "name": "guestbook", "services": {"web": {"image": "...", "x_fusion": {...}}}}

Field names are the model's (``x_fusion``, not ``x-fusion``); every default may be left out; durations
are float seconds and memory sizes int bytes (no "10s"/"512m" strings: this is the normalized form).
No interpolation. A YAML file with the same shape is accepted too. Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from specs.app import DEFER_CHECKS, App
from specs.source import Collector, Doc, pydantic_message

MARKER = "fusion"
VERSION = "v1"


def is_native(doc: Doc) -> bool:
    return isinstance(doc.data, dict) and MARKER in doc.data


def native_to_app(doc: Doc) -> App:
    """A parsed native document -> a checked `App`, or SpecError/SpecErrors with positions."""
    out = Collector(doc)
    data: Any = doc.data
    if data.get(MARKER) != VERSION:
        out.error((MARKER,), f"unknown native format version {data.get(MARKER)!r}: expected {VERSION!r}")
        out.raise_if_any()
    body = {k: v for k, v in data.items() if k != MARKER}
    try:
        app = App.model_validate(body, context={DEFER_CHECKS: True})
    except ValidationError as e:
        for err in e.errors():
            key = err["type"] in ("extra_forbidden", "missing")
            out.error(tuple(err["loc"]), pydantic_message(err), at="key" if key else "value")
        out.raise_if_any()
        raise  # pragma: no cover - every error above was reported
    for p in app.problems():
        out.error(tuple("x_fusion" if k == "x-fusion" else k for k in p.loc), p.message, at="key")
    out.raise_if_any()
    return app


def dump_app_json(app: App, *, indent: int | None = 2) -> str:
    """An `App` as native JSON (loads back to an equal `App`)."""
    body = {MARKER: VERSION, **app.model_dump(mode="json", exclude_defaults=True)}
    body.setdefault("name", app.name)
    return json.dumps(body, indent=indent, sort_keys=False) + "\n"
