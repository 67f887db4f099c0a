"""Benchmark: a host upgrade through Fusion vs. the raw ``ostree pull`` + ``ostree admin deploy``.

Identical sysroots (each on its own tmpfs) start at version FROM; each is upgraded to the ref's head:
- raw:     ``ostree --repo=S/ostree/repo pull origin REF`` + ``ostree admin --sysroot=S deploy --os=fusion origin:REF``
- fusion:  ``fusion host upgrade --sysroot S`` (a new process: includes Python start-up and imports,
           from byte-code compiled first, as an installed Fusion has it)
- api:     ``host.tree.ops.upgrade(S)`` in this process (what the agent pays)
and prints the median times and the ratios fusion/raw and api/raw (target <= 1.2).

Usage (as root)::

    python bench/host_upgrade.py                       # composes the trixie host tree v1, v2 (+1 package)
    python bench/host_upgrade.py --tree busybox        # the tiny test tree (start-up dominates)
    python bench/host_upgrade.py --repo R --ref REF --from V1   # an existing repo whose REF head is newer

Side effects: mounts (and unmounts) tmpfs sysroots under a temp dir; composes into --work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.runner import run  # noqa: E402
from host.tree import ops  # noqa: E402
from host.tree.compose import compose  # noqa: E402
from specs.treefile import load_treefile  # noqa: E402

PACKAGES = ("cli", "common", "host", "lab", "orchestrator", "specs", "units")  # Fusion's own


def _prepare_trees(kind: str, work: Path, cache: Path) -> tuple[Path, str, str]:
    repo = work / f"repo-{kind}"
    if kind == "busybox":
        tf = load_treefile(ROOT / "examples/trees/busybox-test.yaml")
        v1 = tf.model_copy(update={"version": "bench-1"})
        files = (*tf.files, tf.files[0].model_copy(update={"path": "/usr/share/bench", "content": "2\n"}))
        v2 = tf.model_copy(update={"version": "bench-2", "files": files})
    else:
        tf = load_treefile(ROOT / "examples/trees/fusion-host.yaml")
        v1 = tf.model_copy(update={"version": "bench-1"})
        v2 = tf.model_copy(update={"version": "bench-2", "packages": (*tf.packages, "less")})
    first = compose(v1, repo, cache_dir=cache, progress=lambda m: print("  compose v1:", m, file=sys.stderr))
    compose(v2, repo, cache_dir=cache, progress=lambda m: print("  compose v2:", m, file=sys.stderr))
    return repo, tf.ref, first.version


class Tmpfs:
    def __init__(self, parent: Path) -> None:
        self.path = Path(tempfile.mkdtemp(dir=parent))

    def __enter__(self) -> Path:
        run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", str(self.path)])
        return self.path

    def __exit__(self, *exc: object) -> None:
        run(["umount", str(self.path)], check=False)
        self.path.rmdir()


def _timed_raw(sysroot: Path, ref: str) -> float:
    t = time.monotonic()
    run(["ostree", f"--repo={sysroot}/ostree/repo", "pull", "origin", ref])
    run(["ostree", "admin", f"--sysroot={sysroot}", "deploy", "--os=fusion", f"origin:{ref}"])
    return time.monotonic() - t


def _timed_cli(sysroot: Path) -> float:
    t = time.monotonic()
    run([sys.executable, "-m", "cli", "host", "upgrade", "--sysroot", str(sysroot)], cwd=str(ROOT))
    return time.monotonic() - t


def _timed_api(sysroot: Path) -> float:
    t = time.monotonic()
    change = ops.upgrade(sysroot)
    elapsed = time.monotonic() - t
    assert change.changed, change.message
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", choices=["trixie", "busybox"], default="trixie")
    p.add_argument("--repo", type=Path)
    p.add_argument("--ref")
    p.add_argument("--from", dest="from_version")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--work", type=Path, default=Path("/var/tmp/fusion-bench"))
    p.add_argument("--cache-dir", type=Path, default=Path("/var/cache/fusion"))
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.repo:
        if not (a.ref and a.from_version):
            p.error("--repo needs --ref and --from")
        repo, ref, v1 = a.repo, a.ref, a.from_version
    else:
        repo, ref, v1 = _prepare_trees(a.tree, a.work, a.cache_dir)
    url = f"file://{repo.resolve()}"
    # pip compiles an installed package, compose a host tree's copy; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would compile Fusion's modules again in every process
    run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in PACKAGES)])
    times: dict[str, list[float]] = {"raw": [], "fusion": [], "api": []}
    for i in range(a.rounds):
        order = ["raw", "fusion", "api"] if i % 2 == 0 else ["api", "fusion", "raw"]
        for method in order:
            with Tmpfs(a.work) as sysroot:
                ops.init(sysroot, url, ref, version=v1)
                if method == "raw":
                    times[method].append(_timed_raw(sysroot, ref))
                elif method == "fusion":
                    times[method].append(_timed_cli(sysroot))
                else:
                    times[method].append(_timed_api(sysroot))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"tree: {ref} from {v1} to its head ({a.rounds} rounds, medians)")
    for k in ("raw", "fusion", "api"):
        print(f"  {k:7s} {med[k]:6.3f} s   ({', '.join(f'{x:.3f}' for x in times[k])})")
    print(f"ratio fusion host upgrade / raw ostree = {med['fusion'] / med['raw']:.2f}"
          f"   (best runs: {min(times['fusion']) / min(times['raw']):.2f})")
    print(f"ratio ops.upgrade (agent, no start-up) / raw ostree = {med['api'] / med['raw']:.2f}"
          f"   (best runs: {min(times['api']) / min(times['raw']):.2f})")
    start = time.monotonic()
    run([sys.executable, "-m", "cli", "--help"], cwd=str(ROOT))
    print(f"(`fusion --help` alone takes {time.monotonic() - start:.2f} s here: Python start-up and imports)")


if __name__ == "__main__":
    main()
