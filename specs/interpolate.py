"""Compose variable interpolation, and reading `.env` / env_file files.

`interpolate(text, env)` is pure: the environment is passed in as a mapping. The forms are the
Compose Specification's:

    $$              a literal "$"
    $VAR  ${VAR}    the value of VAR ("" when unset)
    ${VAR:-dflt}    dflt when VAR is unset or empty       ${VAR-dflt}   dflt when VAR is unset
    ${VAR:?msg}     error "msg" when VAR is unset or empty ${VAR?msg}   error when VAR is unset
    ${VAR:+alt}     alt when VAR is set and not empty      ${VAR+alt}   alt when VAR is set

VAR is ``[A-Za-z_][A-Za-z0-9_]*``. The default/alt/message text may itself contain interpolations
(``${A:-${B:-x}}``) and is only expanded when used. Any other ``$`` is an error (write ``$$``).
Errors are `InterpolationError`s carrying the offset in the text; the loaders turn them into
`SpecError`s with the file position.

`parse_env_text` is pure; `read_env_file` and `default_environment` read files and `os.environ` (the
only side effects here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A bad ``$`` expression, or a ``${VAR?message}`` whose variable is missing."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand ``text`` with ``env`` (see the module docstring)."""
    out, end = _expand(text, 0, env, stop_at_brace=False)
    assert end == len(text)
    return out


def _expand(text: str, i: int, env: Mapping[str, str], *, stop_at_brace: bool) -> tuple[str, int]:
    """Expand from ``i`` to the end (or to an unmatched ``}`` when ``stop_at_brace``)."""
    parts: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "}" and stop_at_brace:
            return "".join(parts), i
        if ch != "$":
            j = i + 1
            while j < n and text[j] != "$" and not (stop_at_brace and text[j] == "}"):
                j += 1
            parts.append(text[i:j])
            i = j
            continue
        if i + 1 < n and text[i + 1] == "$":
            parts.append("$")
            i += 2
            continue
        if i + 1 < n and text[i + 1] == "{":
            value, i = _braced(text, i, env)
            parts.append(value)
            continue
        m = _NAME.match(text, i + 1)
        if m is None:
            raise InterpolationError(
                "invalid interpolation: '$' must be followed by a variable name or '{' (write '$$' for a literal '$')",
                i,
            )
        parts.append(env.get(m.group(), ""))
        i = m.end()
    if stop_at_brace:
        raise InterpolationError("invalid interpolation: missing '}'", i)
    return "".join(parts), i


def _braced(text: str, start: int, env: Mapping[str, str]) -> tuple[str, int]:
    """Expand the ``${...}`` at ``start``; return the value and the index after ``}``."""
    m = _NAME.match(text, start + 2)
    if m is None:
        raise InterpolationError("invalid interpolation: '${' must be followed by a variable name", start)
    name = m.group()
    i = m.end()
    if i < len(text) and text[i] == "}":
        return env.get(name, ""), i + 1
    op = next((o for o in _OPS if text.startswith(o, i)), None)
    if op is None:
        if i >= len(text):
            raise InterpolationError("invalid interpolation: missing '}'", start)
        raise InterpolationError(
            f"invalid interpolation: unexpected {text[i]!r} after ${{{name}; use one of :- - :? ? :+ +", i
        )
    arg_start = i + len(op)
    # Skip (without expanding) to learn where the argument ends, then expand only when it is used.
    _, end = _expand(text, arg_start, _NoEnv(), stop_at_brace=True)
    value = env.get(name)
    empty = value is None or value == ""

    def arg() -> str:
        return _expand(text, arg_start, env, stop_at_brace=True)[0]

    if op == ":-":
        result = arg() if empty else value
    elif op == "-":
        result = arg() if value is None else value
    elif op in (":?", "?"):
        missing = empty if op == ":?" else value is None
        if missing:
            message = arg()
            text_ = f"required variable {name} is missing a value" + (f": {message}" if message else "")
            raise InterpolationError(text_, start)
        result = value
    elif op == ":+":
        result = "" if empty else arg()
    else:  # "+"
        result = "" if value is None else arg()
    assert result is not None
    return result, end + 1


class _NoEnv(Mapping[str, str]):
    """An environment in which every variable is set and non-empty: used to scan without failing."""

    def __getitem__(self, key: str) -> str:
        return "x"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# -- env files -------------------------------------------------------------------------------------


class EnvFileError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_DOUBLE_QUOTED = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$$"}


def _unescape_double(body: str) -> str:
    """A double-quoted value's body -> an interpolation template (an escaped ``\\$`` stays literal)."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=(.*))?$")


def parse_env_text(text: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse dotenv text: ``KEY=value`` lines, ``#`` comments, blank lines, optional ``export``.

    Values may be single-quoted (literal), double-quoted (``\\n``, ``\\t``, ``\\"`` and ``\\\\``
    escapes; interpolated) or bare (an unquoted `` #`` starts a comment; interpolated). A line with
    only ``KEY`` takes KEY from ``env`` and is left out when unset. Interpolation (bare and
    double-quoted values) uses ``env`` plus the keys defined earlier in the file.
    """
    out: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ENV_LINE.match(raw)
        if m is None:
            raise EnvFileError(f"line {lineno}: expected KEY=VALUE, got {stripped!r}", lineno)
        key, value = m.group(1), m.group(2)
        scope: dict[str, str] = {**(env or {}), **out}
        if value is None:
            if env is not None and key in env:
                out[key] = env[key]
            continue
        value = value.strip()
        try:
            if value[:1] == "'":
                if len(value) < 2 or not value.endswith("'"):
                    raise EnvFileError(f"line {lineno}: unterminated single quote", lineno)
                out[key] = value[1:-1]
            elif value[:1] == '"':
                dq = _DOUBLE_QUOTED.match(value)
                if dq is None:
                    raise EnvFileError(f"line {lineno}: unterminated double quote", lineno)
                out[key] = interpolate(_unescape_double(dq.group(1)), scope)
            else:
                value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
                out[key] = interpolate(value, scope)
        except InterpolationError as e:
            raise EnvFileError(f"line {lineno}: {e.message}", lineno) from None
    return out


def read_env_file(path: str | Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read and parse an env file (side effect: reads the file). Raises OSError, EnvFileError."""
    return parse_env_text(Path(path).read_text(encoding="utf-8"), env)


def default_environment(spec_path: str | Path) -> dict[str, str]:
    """The environment Compose interpolates with: the `.env` file next to the spec (if any),
    overridden by the process environment. Side effects: reads os.environ and that file."""
    env = dict(os.environ)
    dotenv = Path(spec_path).parent / ".env"
    if dotenv.is_file():
        return {**read_env_file(dotenv, env), **env}
    return env
