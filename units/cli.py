"""Commands that `units/` adds to `fusion`: ``fusion spec check`` and ``fusion units render``.

Side effects: reads spec files, prints, and (``--out``) writes unit files. Errors are raised as
`FusionError`s; `cli.main` prints them (exit 2 for bad input).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from specs.app import App
from specs.errors import FusionError, InputError, SpecError, SpecErrors
from specs.native import dump_app_json
from units.render import ENGINES, HostOptions, render_app
from units.sources import group_paths, load_any_with_warnings

__all__ = ["commands", "spec", "units"]


def _warn(lines: list[str]) -> None:
    for line in lines:
        click.secho(f"warning: {line}", fg="yellow", err=True)


def _native(app: App) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dump_app_json(app))
    return data


@click.group("spec")
def spec() -> None:
    """Check app specs (Compose, geard JSON, native JSON, Quadlet files)."""


@spec.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the normalized spec as JSON.")
def check(files: tuple[Path, ...], as_json: bool) -> None:
    """Check FILE... and print the normalized spec (YAML, or JSON with --json).

    Each Compose/geard/native file is an app of its own; Quadlet files named together (or a
    directory of them) are one app. Errors name file:line:column; exit code 2 on bad input.
    """
    apps: list[dict[str, Any]] = []
    errors: list[SpecError] = []
    for group in group_paths(files):
        try:
            app, warnings = load_any_with_warnings(group)
        except SpecErrors as e:
            errors += e.errors
            continue
        except SpecError as e:
            errors.append(e)
            continue
        _warn(warnings)
        apps.append(_native(app))
    if as_json:
        if apps:
            click.echo(json.dumps(apps[0] if len(apps) == 1 else apps, indent=2))
    else:
        click.echo("---\n".join(yaml.safe_dump(a, sort_keys=False, allow_unicode=True) for a in apps), nl=False)
    if errors:
        raise SpecErrors(errors)


@click.group("units")
def units() -> None:
    """Render systemd units from app specs."""


@units.command("render")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--engine", type=click.Choice(ENGINES), default="podman", show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Write the units here.")
@click.option("--podman-arg", "podman_args", multiple=True, help="Extra `podman run` argument (repeatable).")
@click.option("--docker-arg", "docker_args", multiple=True, help="Extra `docker run` argument (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {files, quadlet, warnings} as JSON.")
def render(
    files: tuple[Path, ...],
    engine: str,
    out: Path | None,
    podman_args: tuple[str, ...],
    docker_args: tuple[str, ...],
    as_json: bool,
) -> None:
    """Render the systemd units of every replica of the app in FILE (Quadlet files: several FILEs).

    With --out DIR the `.service` units are written to DIR (for the podman engine, the Quadlet
    files they come from go to DIR/quadlet); otherwise they are printed.
    """
    groups = group_paths(files)
    if len(groups) != 1:
        raise InputError("give one app: one spec file, or Quadlet files / one directory of them")
    app, warnings = load_any_with_warnings(groups[0])
    host = HostOptions(podman_args=podman_args, docker_args=docker_args)
    result = render_app(app, engine="docker" if engine == "docker" else "podman", host=host)
    warnings += result.warnings
    _warn(warnings)
    if out is not None:
        written = _write(out, result.files, result.quadlet)
        if as_json:
            click.echo(json.dumps({"written": written, "warnings": warnings}, indent=2))
        else:
            for path in written:
                click.echo(path)
        return
    if as_json:
        body = {"files": result.files, "quadlet": result.quadlet, "warnings": warnings}
        click.echo(json.dumps(body, indent=2))
        return
    for name, text in result.files.items():
        click.echo(f"# {name}")
        click.echo(text)


def _write(out: Path, files: dict[str, str], quadlet: dict[str, str]) -> list[str]:
    written: list[str] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            written.append(str(out / name))
        if quadlet:
            (out / "quadlet").mkdir(exist_ok=True)
            for name, text in quadlet.items():
                (out / "quadlet" / name).write_text(text, encoding="utf-8")
                written.append(str(out / "quadlet" / name))
    except OSError as e:
        raise FusionError(f"cannot write units to {out}: {e.strerror or e}") from None
    return written


commands: list[click.Command] = [spec, units]
