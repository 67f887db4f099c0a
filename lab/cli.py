"""Commands that `lab/` adds to `fusion`."""

from __future__ import annotations

import click

commands: list[click.Command] = []
