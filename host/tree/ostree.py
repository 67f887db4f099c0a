"""The ``ostree`` command line, as typed Python calls.

Side effects: every function here runs ``ostree`` through :func:`common.runner.run`. Failures are
turned into a one-line :class:`TreeError` with a hint (missing remote, unknown ref, corrupt repo,
no space) by :func:`explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.runner import CommandError, run
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


def rev_parse(repo: Path, ref: str) -> str | None:
    try:
        out = run(["ostree", f"--repo={repo}", "rev-parse", ref], check=False)
    except CommandError as e:
        raise explain(e, "rev-parse") from None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def show(repo: Path, rev: str) -> CommitInfo:
    return parse_show(ostree([f"--repo={repo}", "show", rev], f"cannot read commit {rev}"))


def log(repo: Path, ref: str) -> list[CommitInfo]:
    return parse_log(ostree([f"--repo={repo}", "log", ref], f"cannot read the history of {ref}"))


def metadata(repo: Path, rev: str, key: str) -> str | None:
    out = run(["ostree", f"--repo={repo}", "show", f"--print-metadata-key={key}", rev], check=False)
    if out.returncode != 0:
        return None
    return parse_metadata_value(out.stdout)


def cat(repo: Path, rev: str, path: str) -> str | None:
    out = run(["ostree", f"--repo={repo}", "cat", rev, path], check=False)
    return out.stdout if out.returncode == 0 else None


def admin(sysroot: Path, args: Sequence[str | Path], what: str) -> str:
    return ostree(["admin", f"--sysroot={sysroot}", *args], what)
