"""``fusion tree compose``: treefile -> OSTree commit (with metadata, a static delta, a package diff).

API for other parts of Fusion (the lab builds its hosts' tree with it)::

    from host.tree.compose import compose, ComposeResult
    result = compose(Path("examples/trees/fusion-host.yaml"), Path("/srv/repo"),
                     cache_dir=Path("/var/cache/fusion"), progress=print)
    result.ref, result.checksum, result.version, result.changed, result.diff.lines()

``compose`` creates ``repo`` (archive mode) if needed, commits ``ref`` only when the tree's content
changed (``changed=False`` otherwise, with the existing commit), generates a static delta from the
previous commit and updates the repo summary. The debootstrap base and the base+apt rootfs are
cached under ``cache_dir`` (see rootfs.py), so a second compose with one package more takes a
fraction of the first.

Side effects: a scratch rootfs under ``cache_dir/work`` (removed afterwards), the cache, the repo.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from host.tree import layout, rootfs, selfinstall
from host.tree import ostree as ot
from host.tree.packages import PACKAGES_KEY, PackageDiff, Packages, decode, diff, encode
from specs.treefile import TreeFile, load_treefile

DEFAULT_CACHE = Path("/var/cache/fusion")
TREEFILE_KEY = "fusion.treefile"


@dataclass(frozen=True)
class ComposeResult:
    ref: str
    checksum: str
    version: str
    changed: bool
    parent: str | None
    packages: Packages
    diff: PackageDiff
    delta: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"ref": self.ref, "checksum": self.checksum, "version": self.version, "changed": self.changed,
                "parent": self.parent, "packages": len(self.packages), "diff": self.diff.to_json(),
                "static-delta": self.delta, "seconds": self.seconds}


def auto_version(previous: str | None, now: datetime) -> str:
    """``YYYYMMDD.N``: N counts up within a day (like rpm-ostree's automatic versions)."""
    day = now.strftime("%Y%m%d")
    if previous and previous.startswith(day + "."):
        tail = previous[len(day) + 1:]
        if tail.isdigit():
            return f"{day}.{int(tail) + 1}"
    return f"{day}.0"


def build_rootfs(tf: TreeFile, root: Path, cache_dir: Path, progress: Callable[[str], None]) -> Packages:
    """Everything before the commit: bootstrap, packages, files, Fusion, postprocess, OSTree layout."""
    if tf.bootstrap == "busybox":
        progress("building a busybox tree")
        rootfs.busybox_rootfs(root)
    else:
        rootfs.apt_rootfs(tf, root, cache_dir, progress)
    if tf.local_packages:
        progress(f"unpacking {len(tf.local_packages)} local package(s)")
        rootfs.install_debs(root, [tf.resolve(p) for p in tf.local_packages])
    rootfs.add_files(tf, root)
    if tf.install_fusion:
        progress("installing Fusion into the tree")
        selfinstall.install(root)
    if tf.postprocess:
        progress("running the postprocess script")
        rootfs.postprocess(tf, root)
    progress("byte-compiling Python")
    rootfs.compile_python(root)
    progress("converting to the OSTree layout")
    return layout.convert(root)


def _commit(tf: TreeFile, root: Path, repo: Path, cache_dir: Path, parent: str | None, version: str,
            packages: Packages) -> str:
    """Commit ``root`` as the next commit of ``tf.ref`` in ``repo``; returns ``parent`` if unchanged.

    The commit is written to a bare-user staging repo in the cache first (no compression; files it
    already holds from the previous compose cost only a checksum) and then ``pull-local``-ed into
    the archive repo, which then compresses only the new objects.
    """
    stage = cache_dir / "ostree-stage"
    stage.parent.mkdir(parents=True, exist_ok=True)
    # one compose at a time uses the staging repo: its prune must not drop another's fresh objects
    with open(cache_dir / "ostree-stage.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _commit_staged(tf, root, repo, stage, parent, version, packages)


def _commit_staged(tf: TreeFile, root: Path, repo: Path, stage: Path, parent: str | None, version: str,
                   packages: Packages) -> str:
    ot.repo_init(stage, mode="bare-user")
    args = [f"--repo={stage}", "commit", "--orphan", f"--bind-ref={tf.ref}", f"--tree=dir={root}",
            f"--subject=Fusion tree {tf.ref} {version}",
            f"--add-metadata-string=version={version}",
            f"--add-metadata-string={PACKAGES_KEY}={encode(packages)}",
            f"--add-metadata-string={TREEFILE_KEY}={tf.model_dump_json(by_alias=True)}"]
    if parent:
        args.append(f"--parent={parent}")
    checksum = ot.ostree(args, f"cannot commit {tf.ref}").strip().splitlines()[-1]
    ot.ostree([f"--repo={stage}", "refs", "--force", f"--create=cache/{tf.ref}", checksum],
              "cannot record the staged commit")
    if parent and ot.show(stage, checksum).content == ot.show(repo, parent).content:
        return parent  # same files: no new commit
    ot.ostree([f"--repo={repo}", "pull-local", str(stage), checksum], f"cannot copy the commit into {repo}")
    ot.ostree([f"--repo={repo}", "refs", "--force", f"--create={tf.ref}", checksum], f"cannot set {tf.ref}")
    ot.ostree([f"--repo={stage}", "prune", "--refs-only"], "cannot prune the staging repository")
    return checksum


def compose(treefile: Path | TreeFile, repo: Path, *, cache_dir: Path = DEFAULT_CACHE,
            progress: Callable[[str], None] | None = None, now: datetime | None = None) -> ComposeResult:
    """Build the tree of ``treefile`` and commit it to ``repo`` (see the module docstring)."""
    say = progress or (lambda _msg: None)
    tf = treefile if isinstance(treefile, TreeFile) else load_treefile(treefile)
    times: dict[str, float] = {}
    t0 = time.monotonic()
    ot.repo_init(repo)
    parent = ot.rev_parse(repo, tf.ref)
    old_packages: Packages = {}
    old_version = None
    if parent:
        old_packages = decode(ot.metadata(repo, parent, PACKAGES_KEY) or "")
        old_version = ot.show(repo, parent).version
    version = tf.version or auto_version(old_version, now or datetime.now(UTC))
    work = cache_dir / "work" / f"compose-{os.getpid()}-{int(time.time() * 1000)}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "root"
    try:
        packages = build_rootfs(tf, root, cache_dir, say)
        times["build"] = round(time.monotonic() - t0, 2)
        say(f"committing {tf.ref} version {version}")
        t1 = time.monotonic()
        checksum = _commit(tf, root, repo, cache_dir, parent, version, packages)
        times["commit"] = round(time.monotonic() - t1, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = checksum != parent
    delta = False
    if changed and parent:
        say("generating a static delta from the previous commit")
        t2 = time.monotonic()
        ot.ostree([f"--repo={repo}", "static-delta", "generate", f"--from={parent}", f"--to={checksum}"],
                  "cannot generate a static delta")
        times["delta"] = round(time.monotonic() - t2, 2)
        delta = True
    ot.ostree([f"--repo={repo}", "summary", "--update"], "cannot update the repository summary")
    if not changed:
        version = old_version or version
        packages = old_packages
    times["total"] = round(time.monotonic() - t0, 2)
    return ComposeResult(ref=tf.ref, checksum=checksum, version=version, changed=changed,
                         parent=parent if changed else None, packages=packages,
                         diff=diff(old_packages, packages) if (parent and changed) else PackageDiff(),
                         delta=delta, seconds=times)
