"""Package layering: ``fusion host install PKG.deb`` on an immutable host.

A layered deployment is a local commit (ref ``fusion/layered/<osname>`` in the sysroot's repo)
made from the base commit plus the unpacked .deb files (``dpkg-deb -x``; maintainer scripts do
not run) and an updated dpkg database and inventory. The .deb files are kept in the stateroot's
``/var/lib/fusion/layers`` and their names in the deployment's origin (``[fusion]
layered-packages``), so every upgrade re-applies them to the new base.

Side effects: writes the sysroot's repo and /var, deploys (through host.tree.ops).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from host.tree import ops
from host.tree import ostree as ot
from host.tree.layout import DPKG_DB
from host.tree.packages import BASE_KEY, INVENTORY_PATH, LAYERED_KEY, PACKAGES_KEY, encode, inventory_text
from host.tree.rootfs import deb_info, install_debs
from host.tree.status import Origin


def layers_dir(sysroot: Path, osname: str) -> Path:
    return ops.state_dir(sysroot, osname) / "layers"


def _deb_for(sysroot: Path, osname: str, name: str) -> Path:
    deb = layers_dir(sysroot, osname) / f"{name}.deb"
    if not deb.exists():
        raise ot.TreeError(f"layered package {name}: its .deb is missing from {deb.parent}",
                           hint=f"install it again: `fusion host install {name}.deb`")
    return deb


def _merge_into_usr(overlay: Path) -> None:
    """Give unpacked files the tree's layout: /etc -> /usr/etc, /bin etc. into /usr, no /var."""
    for name, dest in (("etc", "usr/etc"), ("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                       ("lib64", "usr/lib64")):
        src = overlay / name
        if src.is_dir() and not src.is_symlink():
            target = overlay / dest
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(src)
    for name in ("var", "run", "tmp"):
        shutil.rmtree(overlay / name, ignore_errors=True)


def build(sysroot: Path, osname: str, base: str, names: tuple[str, ...]) -> str:
    """Commit ``base`` + the layered packages ``names``; returns the new commit's checksum."""
    repo = ops.repo_path(sysroot)
    debs = [_deb_for(sysroot, osname, n) for n in names]
    base_packages = ops.packages_of(sysroot, base)
    base_version = ot.show(repo, base).version or base[:12]
    tmp_parent = repo / "tmp"
    overlay = Path(tempfile.mkdtemp(prefix="fusion-layer-", dir=tmp_parent if tmp_parent.is_dir() else None))
    try:
        overlay.chmod(0o755)
        status = ot.cat(repo, base, f"/{DPKG_DB}/status")
        db = overlay / DPKG_DB
        db.mkdir(parents=True)
        (db / "status").write_text(status or "")
        installed = install_debs(overlay, debs, admindir=DPKG_DB)
        _merge_into_usr(overlay)
        packages = {**base_packages, **installed}
        inventory = overlay / INVENTORY_PATH
        inventory.parent.mkdir(parents=True, exist_ok=True)
        inventory.write_text(inventory_text(packages))
        ot.ostree([f"--repo={repo}", "commit", f"--branch=fusion/layered/{osname}",
                   f"--tree=ref={base}", f"--tree=dir={overlay}",
                   f"--subject=Layered on {base_version}: {' '.join(names)}",
                   f"--add-metadata-string=version={base_version}",
                   f"--add-metadata-string={PACKAGES_KEY}={encode(packages)}",
                   f"--add-metadata-string={BASE_KEY}={base}",
                   f"--add-metadata-string={LAYERED_KEY}={' '.join(names)}"],
                  "cannot commit the layered packages")
    finally:
        shutil.rmtree(overlay, ignore_errors=True)
    csum = ot.rev_parse(repo, f"fusion/layered/{osname}")
    assert csum is not None
    return csum


def install(sysroot: Path, debs: list[Path]) -> ops.Change:
    """Layer ``debs`` on the default deployment: a new default deployment with them."""
    default = ops.status(sysroot)
    if not default:
        raise ot.TreeError(f"{sysroot} has no deployment", hint="run `fusion host init` first")
    dep = default[0]
    origin = ops.origin_of(sysroot, dep)
    store = layers_dir(sysroot, dep.osname)
    store.mkdir(parents=True, exist_ok=True)
    names = list(origin.layered)
    for deb in debs:
        if not Path(deb).is_file():
            raise ot.TreeError(f"{deb}: no such file", hint="give the path of a .deb file")
        name, _version, _ = deb_info(Path(deb))
        shutil.copyfile(deb, store / f"{name}.deb")
        if name not in names:
            names.append(name)
    base = origin.base_checksum or dep.checksum
    new_origin = Origin(refspec=origin.refspec, override_commit=origin.override_commit, layered=tuple(names))
    return ops.apply_change(sysroot, dep, base, new_origin, "install " + " ".join(Path(d).name for d in debs))


def uninstall(sysroot: Path, names: list[str]) -> ops.Change:
    """Remove layered packages (by package name or .deb file name)."""
    deps = ops.status(sysroot)
    if not deps:
        raise ot.TreeError(f"{sysroot} has no deployment", hint="run `fusion host init` first")
    dep = deps[0]
    origin = ops.origin_of(sysroot, dep)
    wanted = [deb_info(Path(n))[0] if n.endswith(".deb") and Path(n).is_file() else n for n in names]
    unknown = [n for n in wanted if n not in origin.layered]
    if unknown:
        raise ot.TreeError(f"not layered: {', '.join(unknown)}",
                           hint=f"layered packages: {', '.join(origin.layered) or 'none'}")
    left = tuple(n for n in origin.layered if n not in wanted)
    base = origin.base_checksum or dep.checksum
    new_origin = Origin(refspec=origin.refspec, override_commit=origin.override_commit, layered=left)
    return ops.apply_change(sysroot, dep, base, new_origin, "uninstall " + " ".join(wanted))
