"""Operations on a host's OSTree sysroot (``--sysroot``, ``/`` on a booted host).

API (the lab and the agent call these; every function takes the sysroot path first)::

    init(sysroot, remote_url, ref, *, osname="fusion", remote="origin", version=None, deploy=True)
    status(sysroot) -> list[Deployment]              # boot order; see host.tree.status.Deployment
    default_deployment(sysroot) -> Deployment | None  # what boots next
    booted_deployment(sysroot) -> Deployment | None
    deployment_path(sysroot, dep) -> Path             # the deployment's root folder (nspawn -D ...)
    upgrade(sysroot, *, check=False, download_only=False) -> Change
    deploy(sysroot, version_or_checksum) -> Change
    rollback(sysroot) -> Change
    has_commit(sysroot, checksum) -> bool              # the commit is in the host's repo
    fetch(sysroot, checksum)                           # pull it from the default deployment's remote
    remote_head(sysroot) -> str                        # the newest commit of the ref the running tree follows
    make_default(sysroot, checksum) -> Change          # deploy it (or reuse its deployment) for the next boot
    rebase(sysroot, refspec) -> Change
    config_diff(sysroot) -> list[tuple[str, str]]     # ("M", "/etc/motd")
    cleanup(sysroot, *, rollback=False, pending=False) -> list[Deployment]   # removed ones
    pin(sysroot, index, pinned=True)
    reboot_required(sysroot) -> bool

Errors are :class:`host.tree.ostree.TreeError` (one line + hint). Every change goes through
``ostree admin deploy`` or libostree's ``write_deployments``, which swap the boot configuration
atomically: when anything fails, the previous default deployment stays the default.

Side effects: runs ``ostree`` (and /usr/bin/python3 with libostree for rollback); writes the sysroot.
``upgrade`` on an offline sysroot runs only ``ostree pull`` and ``ostree admin deploy``: it reads the
boot order, commits and refs from the sysroot's files (bootconfig, commitobj, ref files), and takes
the new deployment's serial from the folder ``ostree admin deploy`` made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from common.runner import CommandError, run
from host.tree import bootconfig
from host.tree import ostree as ot
from host.tree.ostree import TreeError
from host.tree.packages import (
    INVENTORY_PATH,
    PACKAGES_KEY,
    PackageDiff,
    Packages,
    decode,
    diff,
    parse_inventory,
)
from host.tree.status import (
    CommitInfo,
    Deployment,
    Origin,
    mark_roles,
    parse_admin_status,
    parse_config_diff,
    parse_keyfile,
    parse_origin,
    render_origin,
)


@dataclass(frozen=True)
class Change:
    """What an upgrade/deploy/rollback/rebase/install did (``changed=False``: nothing to do)."""

    changed: bool
    message: str
    old: Deployment | None = None
    new: Deployment | None = None
    diff: PackageDiff = PackageDiff()

    def to_json(self) -> dict[str, object]:
        return {"changed": self.changed, "message": self.message,
                "old": self.old.to_json() if self.old else None,
                "new": self.new.to_json() if self.new else None, "diff": self.diff.to_json()}


def repo_path(sysroot: Path) -> Path:
    return Path(sysroot) / "ostree" / "repo"


def deployment_path(sysroot: Path, dep: Deployment) -> Path:
    return Path(sysroot) / "ostree" / "deploy" / dep.osname / "deploy" / f"{dep.checksum}.{dep.serial}"


def state_dir(sysroot: Path, osname: str) -> Path:
    """Fusion's persistent per-OS state: in the stateroot's shared /var."""
    return Path(sysroot) / "ostree" / "deploy" / osname / "var" / "lib" / "fusion"


def _check_sysroot(sysroot: Path) -> None:
    if not (Path(sysroot) / "ostree" / "repo" / "config").exists():
        raise TreeError(f"{sysroot} is not an OSTree sysroot",
                        hint="prepare one with `fusion host init --sysroot PATH --remote URL --ref REF`")


def init(sysroot: Path, remote_url: str, ref: str, *, osname: str = "fusion", remote: str = "origin",
         version: str | None = None, deploy: bool = True) -> Deployment | None:
    """Make ``sysroot`` an OSTree sysroot following ``remote_url``'s ``ref`` and deploy it (its latest
    commit, or ``version``). Safe to run again (it updates the remote's URL)."""
    sysroot = Path(sysroot)
    sysroot.mkdir(parents=True, exist_ok=True)
    if not (repo_path(sysroot) / "config").exists():
        ot.ostree(["admin", "init-fs", sysroot], f"cannot initialize {sysroot}")
    if not (sysroot / "ostree" / "deploy" / osname).exists():
        ot.admin(sysroot, ["os-init", osname], f"cannot create the OS {osname}")
    ot.ostree([f"--repo={repo_path(sysroot)}", "remote", "add", "--force", "--no-gpg-verify",
               remote, remote_url], f"cannot add remote {remote}")
    state_dir(sysroot, osname).mkdir(parents=True, exist_ok=True)
    if not deploy:
        return None
    origin = Origin(refspec=f"{remote}:{ref}")
    if version is None:
        target = _pull(sysroot, remote, ref)
    else:
        target = _pull(sysroot, remote, _find_commit(sysroot, remote, ref, version))
        origin = replace(origin, override_commit=target)
    _deploy(sysroot, osname, target, origin)
    return default_deployment(sysroot)


# --- reading --------------------------------------------------------------------------------------

def status(sysroot: Path, *, commits: dict[str, CommitInfo] | None = None) -> list[Deployment]:
    """The deployments in boot order, with version, timestamp, origin and layering filled in.

    ``commits`` memoizes ``ostree show`` across calls of one operation (commits never change)."""
    commits = {} if commits is None else commits
    _check_sysroot(sysroot)
    deps = parse_admin_status(ot.admin(sysroot, ["status"], "cannot read the sysroot's status"))
    booted_dir = _booted_dir(sysroot)
    out = []
    for d in deps:
        if booted_dir is not None and not d.booted:
            st = deployment_path(sysroot, d).stat()
            d = replace(d, booted=(st.st_dev, st.st_ino) == booted_dir)
        origin_file = deployment_path(sysroot, d).with_name(f"{d.checksum}.{d.serial}.origin")
        origin = parse_origin(origin_file.read_text()) if origin_file.exists() else Origin(refspec=None)
        if d.checksum not in commits:
            commits[d.checksum] = ot.show(repo_path(sysroot), d.checksum, content=False)
        info = commits[d.checksum]
        out.append(replace(d, origin=origin.refspec or d.origin, timestamp=info.timestamp,
                           version=d.version or info.version, base_checksum=origin.base_checksum,
                           layered_packages=origin.layered, override_commit=origin.override_commit))
    return mark_roles(out)


def _offline_default(sysroot: Path, commits: dict[str, CommitInfo]) -> Deployment | None:
    """What :func:`status` gives first, for an offline sysroot, read from the boot loader entries
    (:mod:`host.tree.bootconfig`) instead of ``ostree admin status``. None on a booted host or when
    anything is unusual (then ask ``status``)."""
    if _booted_dir(sysroot) is not None:
        return None
    _check_sysroot(sysroot)
    entries = bootconfig.boot_entries(sysroot)
    if not entries:
        return None
    first = entries[0]
    dep = Deployment(index=0, osname=first.osname, checksum=first.checksum, serial=first.serial, default=True)
    try:
        text = deployment_path(sysroot, dep).with_name(f"{dep.checksum}.{dep.serial}.origin").read_text()
    except OSError:
        return None
    keys = parse_keyfile(text)
    pinned = keys.get(("libostree-transient", "pinned"), "false")
    if ("origin", "unlocked") in keys or pinned not in ("true", "false"):
        return None
    origin = parse_origin(text)
    if dep.checksum not in commits:
        commits[dep.checksum] = ot.show(repo_path(sysroot), dep.checksum, content=False)
    info = commits[dep.checksum]
    return replace(dep, pinned=pinned == "true", version=info.version, origin=origin.refspec,
                   timestamp=info.timestamp, base_checksum=origin.base_checksum,
                   layered_packages=origin.layered, override_commit=origin.override_commit)


def _booted_dir(sysroot: Path) -> tuple[int, int] | None:
    """(dev, inode) of "/" when ``sysroot`` is this system's own sysroot (a booted host)."""
    if Path(sysroot).resolve() not in (Path("/"), Path("/sysroot")):
        return None
    st = os.stat("/")
    return (st.st_dev, st.st_ino)


def is_booted_host(sysroot: Path) -> bool:
    return _booted_dir(sysroot) is not None and Path("/run/ostree-booted").exists()


def default_deployment(sysroot: Path) -> Deployment | None:
    deps = status(sysroot)
    return deps[0] if deps else None


def booted_deployment(sysroot: Path) -> Deployment | None:
    return next((d for d in status(sysroot) if d.booted), None)


def origin_of(sysroot: Path, dep: Deployment) -> Origin:
    f = deployment_path(sysroot, dep).with_name(f"{dep.checksum}.{dep.serial}.origin")
    if not f.exists():
        raise TreeError(f"deployment {dep.id} has no origin", hint="rebase it: `fusion host rebase REMOTE:REF`")
    return parse_origin(f.read_text())


def packages_of(sysroot: Path, checksum: str) -> Packages:
    return decode(ot.metadata(repo_path(sysroot), checksum, PACKAGES_KEY) or "")


def deployed_packages(sysroot: Path, dep: Deployment) -> Packages:
    """The package inventory inside a deployment (a file read; the commit metadata if it has none)."""
    inventory = deployment_path(sysroot, dep) / INVENTORY_PATH
    try:
        return parse_inventory(inventory.read_text())
    except OSError:
        return packages_of(sysroot, dep.checksum)


def config_diff(sysroot: Path) -> list[tuple[str, str]]:
    dep = _merge_deployment(sysroot)
    out = ot.admin(sysroot, ["config-diff", f"--os={dep.osname}"], "cannot diff /etc")
    return parse_config_diff(out)


def reboot_required(sysroot: Path) -> bool:
    """True when the next boot would start another deployment than the running one."""
    deps = status(sysroot)
    return bool(deps) and any(d.booted for d in deps) and not deps[0].booted


# --- changing -------------------------------------------------------------------------------------

def _merge_deployment(sysroot: Path) -> Deployment:
    deps = status(sysroot)
    if not deps:
        raise TreeError(f"{sysroot} has no deployment", hint="run `fusion host init --sysroot ... --remote URL --ref REF`")
    return next((d for d in deps if d.booted), deps[0])


def _pull(sysroot: Path, remote: str, ref_or_commit: str, *, metadata_only: bool = False) -> str:
    args = [f"--repo={repo_path(sysroot)}", "pull"]
    if metadata_only:
        args.append("--commit-metadata-only")
    ot.ostree([*args, remote, ref_or_commit], f"cannot pull {ref_or_commit} from {remote}")
    if len(ref_or_commit) == 64 and all(c in "0123456789abcdef" for c in ref_or_commit):
        return ref_or_commit
    csum = ot.rev_parse(repo_path(sysroot), f"{remote}:{ref_or_commit}")
    if csum is None:
        raise TreeError(f"pulled {remote}:{ref_or_commit} but cannot resolve it")
    return csum


def _find_commit(sysroot: Path, remote: str, ref: str, wanted: str) -> str:
    """The commit of ``remote:ref``'s history whose version is ``wanted`` (or whose checksum starts so)."""
    repo = repo_path(sysroot)
    ot.ostree([f"--repo={repo}", "pull", "--commit-metadata-only", "--depth=-1", remote, ref],
              f"cannot read the history of {remote}:{ref}")
    history = ot.log(repo, f"{remote}:{ref}")
    hits = [c for c in history if c.version == wanted]
    if not hits and len(wanted) >= 6 and all(ch in "0123456789abcdef" for ch in wanted):
        hits = [c for c in history if c.checksum.startswith(wanted)]
    if not hits:
        known = ", ".join(c.version or c.checksum[:12] for c in history[:8])
        raise TreeError(f"no version or commit {wanted!r} in {remote}:{ref}",
                        hint=f"known versions, newest first: {known}" if known else None)
    return hits[0].checksum


def _deploy(sysroot: Path, osname: str, target: str, origin: Origin, *, prune: bool = True) -> None:
    tmpdir = repo_path(sysroot) / "tmp"
    origin_file = (tmpdir if tmpdir.is_dir() else Path("/tmp")) / f"fusion-{os.getpid()}-{os.urandom(6).hex()}.origin"
    fd = os.open(origin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(render_origin(origin))
        ot.admin(sysroot, ["deploy", f"--os={osname}", f"--origin-file={origin_file}",
                           *([] if prune else ["--no-prune"]), target], f"cannot deploy {target[:12]}")
    finally:
        origin_file.unlink(missing_ok=True)


def _deployment_dirs(sysroot: Path, osname: str) -> set[str]:
    try:
        return set(os.listdir(Path(sysroot) / "ostree" / "deploy" / osname / "deploy"))
    except FileNotFoundError:
        return set()


def _deployed(sysroot: Path, old: Deployment, target: str, origin: Origin, before: set[str], *,
              commits: dict[str, CommitInfo]) -> Deployment | None:
    """The deployment ``ostree admin deploy`` just made the default (first in boot order), in an
    offline sysroot, without asking ``ostree admin status`` again: its folder ``TARGET.SERIAL`` is
    the one that was not there before. None when that is not clear, or on a booted host (where the
    booted/pending markers come from ``ostree admin status``): then read the status."""
    if old.booted or _booted_dir(sysroot) is not None:
        return None
    fresh = [n for n in _deployment_dirs(sysroot, old.osname) - before
             if n.startswith(f"{target}.") and n[len(target) + 1:].isdigit()]
    if len(fresh) != 1:
        return None
    if target not in commits:
        commits[target] = ot.show(repo_path(sysroot), target, content=False)
    info = commits[target]
    return Deployment(index=0, osname=old.osname, checksum=target, serial=int(fresh[0][len(target) + 1:]),
                      default=True, version=info.version, origin=origin.refspec,
                      timestamp=info.timestamp, base_checksum=origin.base_checksum,
                      layered_packages=origin.layered, override_commit=origin.override_commit)


def apply_change(sysroot: Path, old: Deployment, base: str, origin: Origin, what: str, *,
                 origin_now: Origin | None = None, commits: dict[str, CommitInfo] | None = None) -> Change:
    """Deploy ``base`` (with ``origin``'s layered packages re-applied on it) as the new default."""
    target = base
    if origin.layered:
        from host.tree import layering  # layering builds on this module (and imports pydantic: lazily)

        target = layering.build(sysroot, old.osname, base, origin.layered)
        origin = replace(origin, base_checksum=base)
    else:
        origin = replace(origin, base_checksum=None)
    if target == old.checksum and origin == (origin_now or origin_of(sysroot, old)):
        return Change(False, f"No change: {what} is already the default deployment.", old, old)
    commits = {} if commits is None else commits
    before = _deployment_dirs(sysroot, old.osname)
    _deploy(sysroot, old.osname, target, origin)
    new = _deployed(sysroot, old, target, origin, before, commits=commits)
    if new is None:
        after = status(sysroot, commits=commits)
        new = after[0] if after else None
    new_packages = deployed_packages(sysroot, new) if new is not None else packages_of(sysroot, target)
    d = diff(deployed_packages(sysroot, old), new_packages)
    return Change(True, f"{what}: deployed {new.version if new else target[:12]}", old, new, d)


def remote_url(sysroot: Path, remote: str) -> str:
    return ot.ostree([f"--repo={repo_path(sysroot)}", "remote", "show-url", remote],
                     f"cannot read the URL of remote {remote}").strip()


def has_commit(sysroot: Path, checksum: str) -> bool:
    """Whether the commit is in the host's repo, with its files (file tests: cheap enough to poll).
    A commit pulled with ``--commit-metadata-only`` (:func:`remote_head`) is partial: not there yet."""
    if len(checksum) != 64:
        return False
    repo = repo_path(sysroot)
    return (repo / "objects" / checksum[:2] / f"{checksum[2:]}.commit").exists() and \
        not (repo / "state" / f"{checksum}.commitpartial").exists()


def remote_head(sysroot: Path) -> str:
    """The newest commit of the ref that the booted deployment (the default one in a sysroot that is
    not booted) follows: a metadata-only pull of that ref, nothing else changes."""
    dep = _merge_deployment(sysroot)
    origin = origin_of(sysroot, dep)
    if origin.remote is None or origin.ref is None:
        raise TreeError(f"deployment {dep.id} follows no remote ({origin.refspec})",
                        hint="rebase it: `fusion host rebase REMOTE:REF`")
    return _pull(sysroot, origin.remote, origin.ref, metadata_only=True)


def fetch(sysroot: Path, checksum: str) -> None:
    """Pull ``checksum`` from the remote the default deployment follows. First the objects that
    no deployment needs any more go (``make_default`` leaves them: its deploy does not prune)."""
    if has_commit(sysroot, checksum):
        return
    prune(sysroot)
    origin = origin_of(sysroot, _merge_deployment(sysroot))
    if origin.remote is None:
        raise TreeError(f"cannot fetch {checksum[:12]}: the deployment follows no remote ({origin.refspec})")
    _pull(sysroot, origin.remote, checksum)


def make_default(sysroot: Path, checksum: str) -> Change:
    """Make ``checksum`` the next boot's deployment: an existing deployment of it moves to the
    front, else it is fetched and deployed (following the same ref as now). The repo is not
    pruned here (a third of the deploy's time, while a drained host waits for it): ``fetch`` does
    that before the next download."""
    deps = status(sysroot)
    if deps and deps[0].checksum == checksum:
        return Change(False, f"{checksum[:12]} is already the default deployment", deps[0], deps[0])
    existing = next((d for d in deps if d.checksum == checksum), None)
    if existing is not None:
        _make_default(sysroot, existing)
        return Change(True, f"{existing.version or checksum[:12]} is the default again", deps[0] if deps else None,
                      default_deployment(sysroot))
    fetch(sysroot, checksum)
    merge = _merge_deployment(sysroot)
    origin = replace(origin_of(sysroot, merge), override_commit=None, base_checksum=None)
    _deploy(sysroot, merge.osname, checksum, origin, prune=False)
    return Change(True, f"deployed {checksum[:12]} for the next boot", merge, default_deployment(sysroot))


def prune(sysroot: Path) -> None:
    """Delete the objects no deployment or ref needs any more (``ostree admin cleanup``)."""
    ot.admin(sysroot, ["cleanup"], "cannot clean up")


def upgrade(sysroot: Path, *, check: bool = False, download_only: bool = False) -> Change:
    """Pull the origin ref and deploy it as the new default (re-applying layered packages)."""
    sysroot = Path(sysroot)
    commits: dict[str, CommitInfo] = {}
    default = _offline_default(sysroot, commits)
    if default is not None:
        merge = default  # nothing is booted in an offline sysroot
    else:
        current = status(sysroot, commits=commits)
        if not current:
            raise TreeError(f"{sysroot} has no deployment",
                            hint="run `fusion host init --sysroot ... --remote URL --ref REF`")
        merge = next((d for d in current if d.booted), current[0])
        default = current[0]
    origin = origin_of(sysroot, default)
    if origin.remote is None or origin.ref is None:
        raise TreeError(f"deployment {default.id} follows no remote ({origin.refspec})",
                        hint="rebase it: `fusion host rebase REMOTE:REF`")
    base_now = origin.base_checksum or default.checksum
    new_base = _pull(sysroot, origin.remote, origin.ref, metadata_only=check)
    if new_base == base_now and not origin.override_commit:
        return Change(False, "No upgrade available.", default, default)
    if check or download_only:
        info = ot.show(repo_path(sysroot), new_base)
        d = diff(packages_of(sysroot, base_now), packages_of(sysroot, new_base))
        verb = "Available" if check else "Downloaded"
        return Change(True, f"{verb}: {info.version or new_base[:12]} ({new_base[:12]})", default, None, d)
    change = apply_change(sysroot, default, new_base, replace(origin, override_commit=None), "upgrade",
                          origin_now=origin, commits=commits)
    if change.changed and merge.checksum != default.checksum:  # diff against what is running
        change = replace(change, diff=diff(deployed_packages(sysroot, merge),
                                           packages_of(sysroot, change.new.checksum if change.new else new_base)))
    return change


def deploy(sysroot: Path, wanted: str) -> Change:
    """Deploy a version (or checksum) of the origin ref's history as the new default."""
    default = _merge_deployment(sysroot)
    origin = origin_of(sysroot, default)
    if origin.remote is None or origin.ref is None:
        raise TreeError(f"deployment {default.id} follows no remote", hint="rebase it first")
    target = _find_commit(sysroot, origin.remote, origin.ref, wanted)
    _pull(sysroot, origin.remote, target)
    return apply_change(sysroot, status(sysroot)[0], target, replace(origin, override_commit=target),
                  f"deploy {wanted}")


def rebase(sysroot: Path, refspec: str) -> Change:
    """Follow another ref (``REF`` on the same remote, or ``REMOTE:REF``) and deploy it."""
    default = _merge_deployment(sysroot)
    origin = origin_of(sysroot, default)
    remote, _, ref = refspec.rpartition(":")
    remote = remote or origin.remote or "origin"
    target = _pull(sysroot, remote, ref)
    return apply_change(sysroot, status(sysroot)[0], target,
                  Origin(refspec=f"{remote}:{ref}", layered=origin.layered), f"rebase to {remote}:{ref}")


_REORDER = r"""
import sys, gi
gi.require_version("OSTree", "1.0")
from gi.repository import Gio, OSTree
sysroot = OSTree.Sysroot.new(Gio.File.new_for_path(sys.argv[1]))
sysroot.load(None)
sysroot.lock()
try:
    deps = sysroot.get_deployments()
    want = sys.argv[2]
    first = [d for d in deps if "%s.%d" % (d.get_csum(), d.get_deployserial()) == want]
    if not first:
        sys.exit("deployment %s not found" % want)
    sysroot.write_deployments(first + [d for d in deps if d not in first], None)
finally:
    sysroot.unlock()
"""


def _make_default(sysroot: Path, dep: Deployment) -> None:
    """Move an existing deployment to the front (libostree ``write_deployments``: atomic)."""
    try:
        run(["/usr/bin/python3", "-c", _REORDER, str(sysroot), f"{dep.checksum}.{dep.serial}"], timeout=300)
    except CommandError as e:
        raise ot.explain(e, "cannot reorder deployments") from None


def rollback(sysroot: Path) -> Change:
    """Make the previous deployment the default again (like ``rpm-ostree rollback``)."""
    deps = status(sysroot)
    if len(deps) < 2:
        raise TreeError("no rollback deployment", hint="there is only one deployment")
    booted = next((d for d in deps if d.booted), None)
    if booted is not None and not deps[0].booted:
        target = booted  # undo a pending upgrade
    else:
        target = next(d for d in deps[1:] if d.osname == deps[0].osname)
    _make_default(sysroot, target)
    new = default_deployment(sysroot)
    d = diff(packages_of(sysroot, deps[0].checksum), packages_of(sysroot, target.checksum))
    return Change(True, f"rollback: {target.version or target.checksum[:12]} is the default again",
                  deps[0], new, d)


def cleanup(sysroot: Path, *, rollback: bool = False, pending: bool = False) -> list[Deployment]:
    """Remove deployments beyond booted + default (+ one rollback unless ``rollback``) + pinned; then
    prune unreferenced objects. Returns the removed deployments."""
    deps = status(sysroot)
    booted = next((d for d in deps if d.booted), None)
    keep = {d.index for d in deps if d.pinned or d.booted}
    if deps and not (pending and booted is not None and not deps[0].booted):
        keep.add(0)
    if not rollback:
        spare = next((d for d in deps if d.index not in keep), None)
        if spare is not None:
            keep.add(spare.index)
    removed = [d for d in deps if d.index not in keep]
    for d in sorted(removed, key=lambda x: x.index, reverse=True):
        ot.admin(sysroot, ["undeploy", str(d.index)], f"cannot remove deployment {d.index}")
    prune(sysroot)
    return removed


def pin(sysroot: Path, index: int, pinned: bool = True) -> Deployment:
    deps = status(sysroot)
    if not 0 <= index < len(deps):
        raise TreeError(f"no deployment {index}", hint=f"there are {len(deps)} (fusion host status)")
    ot.admin(sysroot, ["pin", *([] if pinned else ["--unpin"]), str(index)], f"cannot pin deployment {index}")
    return status(sysroot)[index]
