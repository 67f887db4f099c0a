"""Which commit is version V of the hosts' tree: resolved against the remote the hosts follow.

Side effects: runs ``ostree`` (through the runner) on a small metadata-only cache repo under the
state directory, which pulls commit metadata (never content) from the remote over HTTP.

The hosts report their origin (``remote:ref``) and the remote's URL in their registration; every
host of a rollout must follow the same ref, else the version would mean different trees.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.runner import CommandError, run
from specs.cluster import HostRecord
from specs.errors import FusionError, InputError

MAX_HISTORY = 200


class VersionError(FusionError):
    pass


def source(hosts: list[HostRecord]) -> tuple[str, str]:
    """(remote URL, ref) that every host follows; InputError naming the host that differs."""
    seen: dict[tuple[str, str], str] = {}
    for h in sorted(hosts, key=lambda h: h.name):
        if not h.tree.origin or not h.tree.remote_url or ":" not in h.tree.origin:
            raise InputError(f"host {h.name} reports no OSTree origin", hint="is its agent running on an OSTree host?")
        seen.setdefault((h.tree.remote_url, h.tree.origin.split(":", 1)[1]), h.name)
    if len(seen) != 1:
        where = ", ".join(f"{host} follows {url} {ref}" for (url, ref), host in seen.items())
        raise InputError(f"the hosts follow different trees: {where}", hint="upgrade them separately (--host)")
    return next(iter(seen))


def _ostree(repo: Path, *args: str) -> str:
    return run(["ostree", f"--repo={repo}", *args], timeout=300).stdout.strip()


def resolve(url: str, ref: str, version: str, cache: Path) -> str:
    """The checksum of the newest commit of ``ref``'s history whose version is ``version`` (or whose
    checksum starts with it). ``cache`` holds the metadata-only repos (one per URL)."""
    repo = cache / hashlib.sha256(url.encode()).hexdigest()[:16]
    try:
        if not (repo / "config").exists():
            repo.mkdir(parents=True, exist_ok=True)
            _ostree(repo, "init", "--mode=bare-user")
        _ostree(repo, "remote", "add", "--force", "--no-gpg-verify", "origin", url)
        _ostree(repo, "pull", "--commit-metadata-only", f"--depth={MAX_HISTORY}", "origin", ref)
        csum = _ostree(repo, "rev-parse", f"origin:{ref}")
        seen = []
        for _ in range(MAX_HISTORY):
            v = _ostree(repo, "show", "--print-metadata-key=version", csum).strip("'\"")
            seen.append(v)
            if v == version or csum.startswith(version):
                return csum
            parent = run(["ostree", f"--repo={repo}", "rev-parse", f"{csum}^"], check=False, timeout=60)
            if parent.returncode != 0:
                break
            csum = parent.stdout.strip()
    except CommandError as e:
        raise VersionError(f"cannot read the history of {ref} at {url}: {e}") from None
    raise InputError(f"no version {version!r} in {ref} at {url}",
                     hint="versions, newest first: " + ", ".join(seen[:10]))
