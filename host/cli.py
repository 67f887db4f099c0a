"""Commands that `host/` adds to `fusion`: ``fusion tree compose`` and ``fusion host ...``.

Side effects: only through host.tree (ostree, debootstrap); this module parses options and prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from host.tree.ops import Change

# host.tree is imported inside the commands: `fusion` starts faster (the upgrade bench counts it).
DEFAULT_CACHE = Path("/var/cache/fusion")

SYSROOT_HELP = "The OSTree sysroot to work on (default: / on a booted host)."


def _sysroot_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--sysroot", type=click.Path(file_okay=False, path_type=Path), default=Path("/"),
                        envvar="FUSION_SYSROOT", show_default=True, help=SYSROOT_HELP)(f)


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _print_json(data: object) -> None:
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _print_change(change: Change, as_json: bool, sysroot: Path) -> None:
    if as_json:
        _print_json(change.to_json())
        return
    click.echo(change.message)
    for line in change.diff.lines():
        click.echo(line)
    from host.tree import ops

    if change.changed and change.new is not None and not change.new.booted and ops.is_booted_host(sysroot):
        click.echo('Run "systemctl reboot" to start the new deployment.')


# --- fusion tree ----------------------------------------------------------------------------------

@click.group("tree")
def tree() -> None:
    """Build host trees (OSTree commits from Debian packages)."""


@tree.command("compose")
@click.argument("treefile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The OSTree repository to commit to (created in archive mode if missing).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CACHE,
              show_default=True, help="Where debootstrap and apt results are cached.")
@_json_option
def compose_cmd(treefile: Path, repo: Path, cache_dir: Path, as_json: bool) -> None:
    """Compose TREEFILE into a commit of its ref in REPO (skipped when nothing changed)."""
    from host.tree import compose as composer

    start = time.monotonic()

    def progress(msg: str) -> None:
        click.echo(f"[{time.monotonic() - start:6.1f}s] {msg}", err=True)

    result = composer.compose(treefile, repo, cache_dir=cache_dir, progress=progress)
    if as_json:
        _print_json(result.to_json())
        return
    if not result.changed:
        click.echo(f"No change: {result.ref} is already {result.version} ({result.checksum})")
        return
    click.echo(f"Committed {result.ref} version {result.version}: {result.checksum}")
    click.echo(f"{len(result.packages)} packages" + (", static delta from the previous commit" if result.delta else ""))
    for line in result.diff.lines():
        click.echo(line)


# --- fusion host ----------------------------------------------------------------------------------

@click.group("host")
def host() -> None:
    """This host's OS tree: status, upgrade, rollback, layering (like rpm-ostree)."""


@host.command("init")
@_sysroot_option
@click.option("--remote", "remote_url", required=True, help="URL of the tree repository (file:// or http://).")
@click.option("--ref", required=True, help="The ref to follow, e.g. fusion/trixie/x86_64/host.")
@click.option("--os", "osname", default="fusion", show_default=True, help="The OS (stateroot) name.")
@click.option("--remote-name", default="origin", show_default=True)
@click.option("--version", "version", default=None, help="Deploy this version instead of the latest.")
@click.option("--no-deploy", is_flag=True, help="Only prepare the sysroot and the remote.")
def init_cmd(sysroot: Path, remote_url: str, ref: str, osname: str, remote_name: str, version: str | None,
             no_deploy: bool) -> None:
    """Prepare a sysroot following REMOTE's REF and deploy it."""
    from host.tree import ops

    dep = ops.init(sysroot, remote_url, ref, osname=osname, remote=remote_name, version=version,
                   deploy=not no_deploy)
    if dep is None:
        click.echo(f"Initialized {sysroot} (remote {remote_name} -> {remote_url})")
    else:
        click.echo(f"Initialized {sysroot}: deployed {ref} version {dep.version} ({dep.checksum})")


@host.command("status")
@_sysroot_option
@_json_option
def status_cmd(sysroot: Path, as_json: bool) -> None:
    """List deployments: ● booted, pending, rollback, pinned."""
    from host.tree import ops
    from host.tree.status import render_status

    deps = ops.status(sysroot)
    booted = any(d.booted for d in deps)
    if as_json:
        _print_json({"sysroot": str(sysroot), "booted": booted,
                     "deployments": [d.to_json() for d in deps]})
        return
    click.echo(render_status(deps, booted_host=booted), nl=False)


@host.command("upgrade")
@_sysroot_option
@click.option("--check", is_flag=True, help="Only check for an upgrade (exit 77 when there is none).")
@click.option("--download-only", is_flag=True, help="Pull the upgrade, do not deploy it.")
@_json_option
@click.pass_context
def upgrade_cmd(ctx: click.Context, sysroot: Path, check: bool, download_only: bool, as_json: bool) -> None:
    """Pull the newest tree of the origin ref and deploy it as the new default."""
    from host.tree import ops

    change = ops.upgrade(sysroot, check=check, download_only=download_only)
    _print_change(change, as_json, sysroot)
    if check and not change.changed:
        sys.exit(77)  # (click returns ctx.exit codes under standalone_mode=False)


@host.command("deploy")
@_sysroot_option
@click.argument("version")
@_json_option
def deploy_cmd(sysroot: Path, version: str, as_json: bool) -> None:
    """Deploy VERSION (or a commit checksum) of the origin ref as the new default."""
    from host.tree import ops

    _print_change(ops.deploy(sysroot, version), as_json, sysroot)


@host.command("rollback")
@_sysroot_option
@_json_option
def rollback_cmd(sysroot: Path, as_json: bool) -> None:
    """Make the previous deployment the default again."""
    from host.tree import ops

    _print_change(ops.rollback(sysroot), as_json, sysroot)


@host.command("rebase")
@_sysroot_option
@click.argument("refspec")
@_json_option
def rebase_cmd(sysroot: Path, refspec: str, as_json: bool) -> None:
    """Follow another REF (or REMOTE:REF) and deploy it."""
    from host.tree import ops

    _print_change(ops.rebase(sysroot, refspec), as_json, sysroot)


@host.command("config-diff")
@_sysroot_option
@_json_option
def config_diff_cmd(sysroot: Path, as_json: bool) -> None:
    """Files of /etc changed from the tree's defaults: A (added), M (modified), D (deleted)."""
    from host.tree import ops

    changes = ops.config_diff(sysroot)
    if as_json:
        _print_json([{"change": c, "path": p} for c, p in changes])
        return
    for c, p in changes:
        click.echo(f"{c} {p}")


@host.command("cleanup")
@_sysroot_option
@click.option("--rollback", "-r", is_flag=True, help="Also remove the rollback deployment.")
@click.option("--pending", "-p", is_flag=True, help="Also remove a pending deployment.")
def cleanup_cmd(sysroot: Path, rollback: bool, pending: bool) -> None:
    """Remove extra deployments (pinned ones stay) and unused objects."""
    from host.tree import ops

    removed = ops.cleanup(sysroot, rollback=rollback, pending=pending)
    click.echo(f"Removed {len(removed)} deployment(s)" +
               "".join(f"\n  {d.version or ''} {d.checksum}" for d in removed))


@host.command("pin")
@_sysroot_option
@click.argument("index", type=int, default=0)
def pin_cmd(sysroot: Path, index: int) -> None:
    """Keep deployment INDEX (0 = the default) through upgrades and cleanups."""
    from host.tree import ops

    d = ops.pin(sysroot, index, True)
    click.echo(f"Deployment {index} ({d.version or d.checksum[:12]}) is now pinned")


@host.command("unpin")
@_sysroot_option
@click.argument("index", type=int, default=0)
def unpin_cmd(sysroot: Path, index: int) -> None:
    """Let deployment INDEX be cleaned up again."""
    from host.tree import ops

    d = ops.pin(sysroot, index, False)
    click.echo(f"Deployment {index} ({d.version or d.checksum[:12]}) is no longer pinned")


@host.command("install")
@_sysroot_option
@click.argument("debs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_json_option
def install_cmd(sysroot: Path, debs: tuple[Path, ...], as_json: bool) -> None:
    """Layer .deb packages on the OS tree (kept across upgrades)."""
    from host.tree import layering

    _print_change(layering.install(sysroot, list(debs)), as_json, sysroot)


@host.command("uninstall")
@_sysroot_option
@click.argument("packages", nargs=-1, required=True)
@_json_option
def uninstall_cmd(sysroot: Path, packages: tuple[str, ...], as_json: bool) -> None:
    """Remove layered packages (by name)."""
    from host.tree import layering

    _print_change(layering.uninstall(sysroot, list(packages)), as_json, sysroot)


@host.command("reboot-required")
@_sysroot_option
@click.pass_context
def reboot_required_cmd(ctx: click.Context, sysroot: Path) -> None:
    """Exit 77 when the next boot starts another deployment than the running one."""
    from host.tree import ops

    if ops.reboot_required(sysroot):
        click.echo("reboot required: a pending deployment is waiting")
        sys.exit(77)  # (click returns ctx.exit codes under standalone_mode=False)
    click.echo("no reboot required")


commands: list[click.Command] = [tree, host]
