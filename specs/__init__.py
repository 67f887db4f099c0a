"""The Fusion language: pydantic models and loaders. Imports nothing else of Fusion's.

Public API (import from here or from the named module):

    from specs import load_app, load_app_text          # any app spec file -> App (specs.loader)
    from specs.app import App, Service, Port, Mount, ...  # the normalized model
    from specs.errors import SpecError, SpecErrors        # what loaders raise (InputError, exit 2)
"""

from __future__ import annotations

from specs.app import App, Service
from specs.errors import InputError, Location, SpecError, SpecErrors
from specs.loader import load_app, load_app_text
from specs.native import dump_app_json

__all__ = [
    "App",
    "InputError",
    "Location",
    "Service",
    "SpecError",
    "SpecErrors",
    "dump_app_json",
    "load_app",
    "load_app_text",
]
