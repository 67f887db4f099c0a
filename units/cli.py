"""Commands that `units/` adds to `fusion`."""

from __future__ import annotations

import click

commands: list[click.Command] = []
