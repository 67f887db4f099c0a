"""The one command runner: every subprocess Fusion starts goes through here.

Side effects: runs processes. Each command is logged (logger ``fusion.run``) before it runs; a
failure raises :class:`CommandError` carrying the command and its stderr, so callers never parse
half-failed output.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from specs.errors import FusionError

log = logging.getLogger("fusion.run")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandError(FusionError):
    """A command exited non-zero (or could not start, or timed out)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str, *, hint: str | None = None) -> None:
        self.args_ = tuple(args)
        self.returncode = returncode
        self.stderr = stderr
        last = _last_line(stderr) or f"exit status {returncode}"
        super().__init__(f"{os.path.basename(args[0])} failed: {last}", hint=hint)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def quote(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    capture: bool = True,
) -> Result:
    """Run ``args`` to completion. ``env`` is added to the current environment.

    With ``capture=False`` output goes to our own stdout/stderr (for long builds a person watches).
    """
    args = [str(a) for a in args]
    log.debug("run: %s", quote(args))
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    binary = isinstance(input, bytes)
    try:
        proc = subprocess.run(
            args,
            input=input,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=not binary,
            check=False,
        )
    except FileNotFoundError as e:
        raise CommandError(args, 127, str(e), hint=f"install {args[0]!r}") from e
    except subprocess.TimeoutExpired as e:
        raise CommandError(args, 124, f"timed out after {timeout}s") from e
    out = proc.stdout or ""
    err = proc.stderr or ""
    if binary:
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
    result = Result(tuple(args), proc.returncode, out, err)
    if check and proc.returncode != 0:
        log.debug("failed (%d): %s", proc.returncode, err.strip())
        raise CommandError(args, proc.returncode, err)
    return result


def spawn(
    args: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
    log_path: str | None = None,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (a daemon we own) and return it; the caller stops it by pid.

    With ``log_path`` its stdout and stderr are appended to that file.
    """
    args = [str(a) for a in args]
    log.debug("spawn: %s", quote(args))
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    if log_path is not None:
        with open(log_path, "ab") as fh:
            return subprocess.Popen(args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=new_session)
    return subprocess.Popen(args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=stderr, start_new_session=new_session)
