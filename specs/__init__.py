"""The Fusion language: pydantic models and loaders. Imports nothing else of Fusion's.

Public API (import from here or from the named module):

    from specs import load_app, load_app_text          # any app spec file -> App (specs.loader)
    from specs.app import App, Service, Port, Mount, ...  # the normalized model
    from specs.errors import SpecError, SpecErrors        # what loaders raise (InputError, exit 2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from specs.app import App as App
    from specs.app import Service as Service
    from specs.errors import InputError as InputError
    from specs.errors import Location as Location
    from specs.errors import SpecError as SpecError
    from specs.errors import SpecErrors as SpecErrors
    from specs.loader import load_app as load_app
    from specs.loader import load_app_text as load_app_text
    from specs.native import dump_app_json as dump_app_json

# Imported on first use (PEP 562), so that `specs.errors` or `specs.treefile` alone stays cheap
# for commands that never load an app spec.
_LAZY = {
    "App": "specs.app",
    "Service": "specs.app",
    "InputError": "specs.errors",
    "Location": "specs.errors",
    "SpecError": "specs.errors",
    "SpecErrors": "specs.errors",
    "load_app": "specs.loader",
    "load_app_text": "specs.loader",
    "dump_app_json": "specs.native",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'specs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
