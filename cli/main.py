"""The `fusion` command.

It only composes the click commands that `specs/`, `units/`, `host/`, `orchestrator/` and `lab/`
define (each package's ``cli.py`` exports ``commands``) and turns typed errors into one line plus
a hint. Exit codes: 0 ok, 1 failure, 2 bad input. ``--debug`` shows tracebacks and debug logs.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from specs.errors import FusionError

# Which package's `cli.py` defines each top-level command. Modules are imported only when one of
# their commands is used (or listed by --help), so `fusion host status` does not pay for etcd or
# the spec models. tests/unit/test_layout.py checks this table against the modules' `commands`.
COMMANDS: dict[str, str] = {
    "spec": "units.cli",
    "units": "units.cli",
    "deploy": "orchestrator.cli",
    "ps": "orchestrator.cli",
    "logs": "orchestrator.cli",
    "scale": "orchestrator.cli",
    "rm": "orchestrator.cli",
    "hosts": "orchestrator.cli",
    "history": "orchestrator.cli",
    "rollback": "orchestrator.cli",
    "cordon": "orchestrator.cli",
    "uncordon": "orchestrator.cli",
    "reconcile": "orchestrator.cli",
    "drain": "orchestrator.upgrade.cli",
    "upgrade": "orchestrator.upgrade.cli",
    "fleetlock": "orchestrator.upgrade.cli",
    "tree": "host.cli",
    "host": "host.cli",
    "lab": "lab.cli",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        commands: list[click.Command] = importlib.import_module(module).commands
        return next((c for c in commands if c.name == cmd_name), None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fusion", prog_name="fusion")  # read only when asked
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def fusion(ctx: click.Context, debug: bool) -> None:
    """Fusion: containers as systemd units on a fleet of OSTree atomic hosts."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rc = fusion.main(args=args, prog_name="fusion", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except FusionError as e:
        if debug:
            raise
        for line in str(e).splitlines() or ["failed"]:
            click.secho(f"error: {line}", fg="red", err=True)
        if e.hint:
            click.echo(f"hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
