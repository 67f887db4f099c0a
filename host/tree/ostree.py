"""The ``ostree`` command line, as typed Python calls.

Side effects: the functions here run ``ostree`` through :func:`common.runner.run`, except where a
plain file of the repository answers the same question: :func:`show` and :func:`metadata` read a
commit object by checksum (:mod:`host.tree.commitobj`), :func:`rev_parse` reads a ref file. Failures
are turned into a one-line :class:`TreeError` with a hint (missing remote, unknown ref, corrupt
repo, no space) by :func:`explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.runner import CommandError, run
from host.tree.commitobj import read_commit
from host.tree.status import CommitInfo, parse_log, parse_metadata_value, parse_show
from specs.errors import FusionError


class TreeError(FusionError):
    """An OSTree tree or sysroot operation failed."""


_HINTS = (
    ("No space left on device", "free space on the sysroot's filesystem (or run `fusion host cleanup`)"),
    ("Remote \"", "add it with `fusion host init --remote URL` or check `ostree remote list`"),
    ("No such branch", "check the ref: `ostree --repo=REPO refs` lists what the remote has"),
    ("No such metadata object", "the ref or commit does not exist in the remote repository"),
    ("Corrupted", "the repository is corrupt: run `ostree fsck` on it, or recompose the tree"),
    ("corrupt", "the repository is corrupt: run `ostree fsck` on it, or recompose the tree"),
    ("Couldn't find file object", "the repository is missing objects: run `ostree fsck`, or recompose"),
    ("opendir(objects)", "not an OSTree repository (or a damaged one)"),
    ("repo/config", "not an OSTree repository (or a damaged one)"),
    ("Invalid refspec", "a ref looks like fusion/trixie/x86_64/host"),
    ("Permission denied", "run as root"),
)


def explain(e: CommandError, what: str) -> TreeError:
    """A failed ostree call as one line: ``<what>: <ostree's message>`` plus a hint."""
    msg = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else f"exit status {e.returncode}"
    msg = msg.removeprefix("error: ")
    hint = next((h for needle, h in _HINTS if needle in e.stderr), None)
    return TreeError(f"{what}: {msg}", hint=hint)


def ostree(args: Sequence[str | Path], what: str, *, timeout: float | None = 1800) -> str:
    try:
        return run(["ostree", *[str(a) for a in args]], timeout=timeout).stdout
    except CommandError as e:
        raise explain(e, what) from None


def repo_init(repo: Path, mode: str = "archive") -> None:
    if not (repo / "config").exists():
        repo.mkdir(parents=True, exist_ok=True)
        ostree([f"--repo={repo}", "init", f"--mode={mode}"], f"cannot create repository {repo}")


def _ref_file(repo: Path, ref: str) -> Path | None:
    """Where a bare ``REF`` (refs/heads) or ``REMOTE:REF`` (refs/remotes) is stored, if it is."""
    remote, sep, name = ref.rpartition(":")
    parts = name.split("/")
    if not name or "^" in name or any(p in ("", ".", "..") for p in parts) or "/" in remote:
        return None
    return Path(repo) / "refs" / (f"remotes/{remote}" if sep else "heads") / name


def rev_parse(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` points to (None: no such ref). A plain ref file answers without ``ostree``."""
    path = _ref_file(repo, ref)
    if path is not None:
        try:
            csum = path.read_text().strip()
        except OSError:
            csum = ""
        if len(csum) == 64 and all(c in "0123456789abcdef" for c in csum):
            return csum
    try:
        out = run(["ostree", f"--repo={repo}", "rev-parse", ref], check=False)
    except CommandError as e:
        raise explain(e, "rev-parse") from None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def show(repo: Path, rev: str, *, content: bool = True) -> CommitInfo:
    """One commit; by checksum it is read from the object file (the same fields ``ostree show``
    prints; ``content=False``: the ContentChecksum may be left out)."""
    info = read_commit(repo, rev, content=content)
    if info is not None:
        return info
    return parse_show(ostree([f"--repo={repo}", "show", rev], f"cannot read commit {rev}"))


def log(repo: Path, ref: str) -> list[CommitInfo]:
    return parse_log(ostree([f"--repo={repo}", "log", ref], f"cannot read the history of {ref}"))


def metadata(repo: Path, rev: str, key: str) -> str | None:
    """A string value of the commit's metadata (None when the commit or the key is missing)."""
    info = read_commit(repo, rev, content=False)
    if info is not None:
        return info.metadata.get(key)
    out = run(["ostree", f"--repo={repo}", "show", f"--print-metadata-key={key}", rev], check=False)
    if out.returncode != 0:
        return None
    return parse_metadata_value(out.stdout)


def cat(repo: Path, rev: str, path: str) -> str | None:
    out = run(["ostree", f"--repo={repo}", "cat", rev, path], check=False)
    return out.stdout if out.returncode == 0 else None


def admin(sysroot: Path, args: Sequence[str | Path], what: str) -> str:
    return ostree(["admin", f"--sysroot={sysroot}", *args], what)
