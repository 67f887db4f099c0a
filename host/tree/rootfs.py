"""Building a tree's root filesystem (before it gets the OSTree layout).

Side effects: runs debootstrap, apt-get (chrooted, inside a private mount namespace made with
``unshare --mount`` so no mount outlives the command), dpkg-deb and tar; writes the cache under
``cache_dir``:

- ``debootstrap/<key>.tar``: a plain ``debootstrap --variant=...`` of a suite (key: suite, mirror,
  variant, architecture);
- ``rootfs/<key>.tar`` + ``.json``: that base plus the treefile's apt packages (key: base + package
  set). A compose whose package set grows starts from the cached rootfs with the largest subset of
  its packages and only apt-installs the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from common.runner import CommandError, run
from host.tree.ostree import TreeError
from host.tree.packages import Packages, parse_dpkg_query
from specs.treefile import TreeFile

Progress = Callable[[str], None]
KEEP_ROOTFS_TARBALLS = 4

OS_RELEASE_BUSYBOX = 'NAME="Fusion (busybox test tree)"\nID=fusion-busybox\nPRETTY_NAME="Fusion busybox tree"\n'


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def _tar_out(root: Path, tarball: Path) -> None:
    tmp = tarball.with_suffix(".tmp")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(tmp), "."])
    tmp.rename(tarball)


def _tar_in(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xpf", str(tarball)])


def in_namespace(root: Path, command: list[str], *, binds: Iterable[tuple[Path, str]] = (),
                 env: dict[str, str] | None = None, timeout: float = 3600) -> None:
    """Run ``command`` chrooted in ``root`` with /proc and /dev mounted, in a private mount
    namespace (the mounts disappear with the process, even if it fails)."""
    script = ['set -e', f'R="{root}"', 'mount -t proc proc "$R/proc"', 'mount --rbind /dev "$R/dev"']
    for i, (_src, dest) in enumerate(binds):
        script.append(f'mkdir -p "$R{dest}" && mount --bind "$BIND{i}" "$R{dest}"')
    script.append('exec chroot "$R" "$@"')
    bind_env = {f"BIND{i}": str(src) for i, (src, _) in enumerate(binds)}
    run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh", *command],
        env={**bind_env, **(env or {})}, timeout=timeout)


def debootstrap_base(tf: TreeFile, cache_dir: Path, progress: Progress) -> tuple[Path, str]:
    """The cached plain debootstrap of the suite: ``(tarball, key)``; built on first use."""
    key = _key("debootstrap", tf.suite, tf.mirror, tf.variant, _arch())
    tarball = cache_dir / "debootstrap" / f"{tf.suite}-{tf.variant}-{key}.tar"
    if tarball.exists():
        return tarball, key
    work = cache_dir / "work" / f"debootstrap-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    progress(f"debootstrap {tf.suite} ({tf.variant}) from {tf.mirror} (cached afterwards)")
    try:
        run(["unshare", "--mount", "--propagation", "private",
             "debootstrap", f"--variant={tf.variant}", "--merged-usr", tf.suite, str(work / "root"), tf.mirror],
            timeout=3600)
        _tar_out(work / "root", tarball)
    except CommandError as e:
        raise TreeError(f"debootstrap {tf.suite} failed: {_tail(e.stderr or e.message)}",
                        hint="check the suite and mirror in the treefile (and network access to it)") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball, key


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "unknown error"


def apt_rootfs(tf: TreeFile, root: Path, cache_dir: Path, progress: Progress) -> None:
    """Fill ``root`` with the suite plus the treefile's apt packages, from the cache when possible."""
    base, base_key = debootstrap_base(tf, cache_dir, progress)
    wanted = sorted(set(tf.packages))
    key = _key("rootfs", base_key, wanted)
    cached = cache_dir / "rootfs" / f"{key}.tar"
    if cached.exists():
        progress(f"reusing cached rootfs with {len(wanted)} packages")
        _tar_in(cached, root)
        os.utime(cached)
        return
    start, have = base, list[str]()
    for meta in sorted((cache_dir / "rootfs").glob("*.json")):
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        tar = meta.with_suffix(".tar")
        if info.get("base") == base_key and set(info["packages"]) <= set(wanted) and tar.exists() \
                and len(info["packages"]) > len(have):
            start, have = tar, info["packages"]
    missing = [p for p in wanted if p not in have]
    progress(f"starting from {'cached rootfs with ' + str(len(have)) + ' packages' if have else 'debootstrap base'}"
             f"; apt-get install {len(missing)} package(s)")
    _tar_in(start, root)
    if missing:
        apt_install(root, missing, cache_dir)
    _tar_out(root, cached)
    (cache_dir / "rootfs" / f"{key}.json").write_text(json.dumps({"base": base_key, "packages": wanted}))
    _prune_cache(cache_dir / "rootfs")


def _prune_cache(folder: Path) -> None:
    tars = sorted(folder.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tars[KEEP_ROOTFS_TARBALLS:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


def apt_install(root: Path, packages: list[str], cache_dir: Path) -> None:
    archives = cache_dir / "apt-archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink() or not resolv.exists():
        resolv.unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", resolv)
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    binds = [(archives, "/var/cache/apt/archives")]
    try:
        in_namespace(root, ["apt-get", "-q", "update"], binds=binds, env=env, timeout=900)
        in_namespace(root, ["apt-get", "-q", "-y", "--no-install-recommends", "install", *packages],
                     binds=binds, env=env)
    except CommandError as e:
        raise TreeError(f"apt-get install failed: {_tail(e.stderr)}",
                        hint="check the package names in the treefile (apt-cache policy NAME)") from None
    finally:
        policy.unlink(missing_ok=True)


def busybox_rootfs(root: Path) -> None:
    """A tiny static tree for tests: busybox, /etc/passwd, os-release and an empty dpkg database."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise TreeError("busybox is not installed", hint="apt-get install busybox-static")
    for d in ("usr/bin", "usr/sbin", "usr/lib", "etc", "var/lib/dpkg/info", "var/lib/dpkg/updates",
              "dev", "proc", "sys", "run", "tmp", "root", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "usr/lib64").mkdir()
    for link in ("bin", "sbin", "lib", "lib64"):
        (root / link).symlink_to(f"usr/{link}")
    shutil.copy2(busybox, root / "usr/bin/busybox")
    for name in run([busybox, "--list"]).stdout.split():
        target = root / "usr/bin" / name
        if name != "busybox" and not target.exists():
            target.symlink_to("busybox")
    (root / "usr/lib/os-release").write_text(OS_RELEASE_BUSYBOX)
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/hostname").write_text("fusion\n")
    (root / "var/lib/dpkg/status").write_text("")
    (root / "var/lib/dpkg/available").write_text("")
    (root / "tmp").chmod(0o1777)


def deb_info(deb: Path) -> tuple[str, str, str]:
    """``(package, version, control text)`` of a .deb file."""
    try:
        control = run(["dpkg-deb", "-f", str(deb)]).stdout
    except CommandError as e:
        raise TreeError(f"{deb}: not a .deb package ({_tail(e.stderr)})") from None
    fields = dict(line.split(": ", 1) for line in control.splitlines() if ": " in line and not line.startswith(" "))
    if "Package" not in fields or "Version" not in fields:
        raise TreeError(f"{deb}: no Package/Version in its control file")
    return fields["Package"], fields["Version"], control


def install_debs(root: Path, debs: list[Path], admindir: str = "var/lib/dpkg") -> Packages:
    """Unpack ``debs`` into ``root`` (``dpkg-deb -x``, no maintainer scripts) and record them in the
    dpkg database at ``root/admindir`` so ``dpkg -l`` and the inventory list them."""
    db = root / admindir
    (db / "info").mkdir(parents=True, exist_ok=True)
    status_path = db / "status"
    status = status_path.read_text() if status_path.exists() else ""
    installed: Packages = {}
    for deb in debs:
        if not deb.is_file():
            raise TreeError(f"{deb}: no such .deb file")
        name, version, control = deb_info(deb)
        try:
            run(["dpkg-deb", "-x", str(deb), str(root)])
            listing = run(["dpkg-deb", "-c", str(deb)]).stdout
        except CommandError as e:
            raise TreeError(f"{deb}: cannot unpack: {_tail(e.stderr)}") from None
        paths = []
        for line in listing.splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6:
                p = parts[5].split(" -> ")[0].lstrip(".").rstrip("/") or "/."
                paths.append(p)
        (db / "info" / f"{name}.list").write_text("\n".join(paths) + "\n")
        stanzas = [s for s in status.split("\n\n") if s.strip() and not s.startswith(f"Package: {name}\n")]
        lines = control.rstrip("\n").splitlines()
        lines.insert(1, "Status: install ok installed")
        stanzas.append("\n".join(lines))
        status = "\n\n".join(s.strip("\n") for s in stanzas) + "\n\n"
        installed[name] = version
    status_path.write_text(status)
    return installed


def installed_packages(root: Path, admindir: str = "var/lib/dpkg") -> Packages:
    out = run(["dpkg-query", f"--admindir={root / admindir}", "-W",
               "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"], check=False)
    return parse_dpkg_query(out.stdout)


def add_files(tf: TreeFile, root: Path) -> None:
    """The treefile's ``files`` and ``units``; then ``systemctl --root enable`` its ``enable`` list."""
    for f in tf.files:
        dest = root / f.path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()
        if f.source is not None:
            src = tf.resolve(f.source)
            if not src.is_file():
                raise TreeError(f"files: {f.path}: source {src} does not exist")
            shutil.copyfile(src, dest)
        else:
            dest.write_text(f.content or "")
        dest.chmod(f.mode)
    unit_dir = root / "usr/lib/systemd/system"
    for u in tf.units:
        unit_dir.mkdir(parents=True, exist_ok=True)
        (unit_dir / u.name).write_text(u.content)
    if tf.enable:
        try:
            run(["systemctl", f"--root={root}", "enable", *tf.enable])
        except CommandError as e:
            raise TreeError(f"enable: {_tail(e.stderr)}",
                            hint="a unit to enable needs an [Install] section and must exist in the tree") from None


def compile_python(root: Path) -> None:
    """Byte-compile the tree's Python (standard library, Debian's packages, Fusion) with hash-based
    ``.pyc`` files. OSTree sets every file's mtime to 0, so the usual timestamp-based ``.pyc`` files
    never match their sources and, ``/usr`` being read-only on a host, every Python process would
    compile all it imports again (the agent's start on a freshly booted tree took a second more)."""
    dirs = sorted(f"/{p.relative_to(root)}" for p in (root / "usr/lib").glob("python3*") if p.is_dir())
    fusion = root / "usr/lib/fusion/python"
    if not (root / "usr/bin/python3").exists() or not dirs:
        return
    dirs += [f"/{fusion.relative_to(root)}"] if fusion.is_dir() else []
    # a file that does not compile (Python 2 leftovers in some packages) fails only itself
    in_namespace(root, ["/bin/sh", "-c", 'python3 -m compileall -q -f -j 0 --invalidation-mode checked-hash "$@" '
                        '>/dev/null || true', "compileall", *dirs], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def postprocess(tf: TreeFile, root: Path) -> None:
    if not tf.postprocess:
        return
    script = root / "tmp" / f"fusion-postprocess-{int(time.time())}.sh"
    script.write_text(tf.postprocess)
    script.chmod(0o755)
    try:
        in_namespace(root, ["/bin/sh", "-e", f"/tmp/{script.name}"],
                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=1800)
    except CommandError as e:
        raise TreeError(f"postprocess script failed: {_tail(e.stderr) or 'exit ' + str(e.returncode)}") from None
    finally:
        script.unlink(missing_ok=True)
