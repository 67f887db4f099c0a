"""systemd's text rules: word splitting, quoting, specifier escaping and unit-name escaping.

Pure functions, no side effects.

Where each rule applies in a unit file (systemd.unit(5), systemd.service(5)):

* **Specifiers** (``%n``, ``%h``, ...) are expanded by systemd in most values, before anything else
  (for ``Exec*=`` on the whole line, before it is split into words). ``%%`` stands for ``%``.
  :func:`escape_specifiers` makes a literal value safe.
* **Words** of ``Exec*=`` lines (and of other "argument list" keys) are split by systemd's
  ``extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE|EXTRACT_RELAX)``: whitespace separates,
  ``"..."`` and ``'...'`` group, C escapes (``\\n``, ``\\x41``, ``\\s``...) are decoded.
  :func:`split_command_line` is that splitter and :func:`quote_arg` is its inverse.
* **Variables** (``$FOO``, ``${FOO}``) are expanded by systemd only in ``Exec*=`` lines, at start
  time, word by word; ``$$`` stands for ``$``. In other keys ``$`` is an ordinary character.

Podman's Quadlet uses the same splitter (a Go port, ``pkg/systemd/parser/split.go``) but quotes
with :func:`escape_words`, which leaves ``%`` and ``$`` alone on purpose: Quadlet users write
specifiers such as ``%h`` in their files and expect them in the generated unit. Fusion's own
values, which are literal data, go through :func:`quote_arg` with specifier and variable escaping.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "SplitError",
    "Split",
    "WHITESPACE",
    "extract_first_word",
    "split_string",
    "split_command_line",
    "split_strv",
    "escape_words",
    "word_needs_escape",
    "quote_arg",
    "quote_args",
    "escape_specifiers",
    "unescape_specifiers",
    "escape_variables",
    "unit_name_escape",
    "unit_name_unescape",
    "path_escape",
]

WHITESPACE = " \t\n\r"

# Go's unicode.IsSpace: what podman's parser trims around lines.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


class SplitError(ValueError):
    """A value cannot be split into words (unbalanced quotes or escapes, a bad escape)."""


class Split(enum.IntFlag):
    """The flags of systemd's ``extract_first_word`` (the subset podman implements)."""

    RELAX = 1  # allow unbalanced quotes and eat a trailing backslash
    CUNESCAPE = 2  # decode C escapes
    UNESCAPE_RELAX = 4  # keep unknown escapes and a trailing backslash as they are
    UNESCAPE_SEPARATORS = 8  # "\<separator>" and "\\" stand for themselves
    KEEP_QUOTE = 16  # quotes group words but stay in the word
    UNQUOTE = 32  # quotes group words and are removed
    DONT_COALESCE_SEPARATORS = 64
    RETAIN_ESCAPE = 128  # a backslash is an ordinary character
    RETAIN_SEPARATORS = 256


NO_FLAGS = Split(0)

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "s": " ",
}


def _hex(s: str) -> int | None:
    try:
        return int(s, 16) if s and all(c in "0123456789abcdefABCDEF" for c in s) else None
    except ValueError:  # pragma: no cover - guarded above
        return None


def _cunescape_one(p: str) -> tuple[int, str] | None:
    """Decode one C escape at the start of ``p`` (just after the backslash): (length, char) or None.

    Like systemd's ``cunescape_one`` without NUL acceptance. ``\\xNN`` and octal escapes above 0x7f
    give the code point U+00NN, as podman's Go port does (systemd in C would give the raw byte).
    """
    if not p:
        return None
    c = p[0]
    if c in _SIMPLE_ESCAPES:
        return 1, _SIMPLE_ESCAPES[c]
    if c == "x":
        v = _hex(p[1:3]) if len(p) >= 3 else None
        if v is None or v == 0:
            return None
        return 3, chr(v)
    if c in "uU":
        n = 4 if c == "u" else 8
        v = _hex(p[1 : 1 + n]) if len(p) >= 1 + n else None
        if v is None or v == 0 or v > 0x10FFFF:
            return None
        return 1 + n, chr(v)
    if c in "01234567":
        if len(p) < 3 or any(d not in "01234567" for d in p[:3]):
            return None
        v = int(p[:3], 8)
        if v == 0 or v > 255:
            return None
        return 3, chr(v)
    return None


def extract_first_word(
    s: str, separators: str = WHITESPACE, flags: Split = NO_FLAGS, *, keep_empty: bool = True
) -> tuple[str | None, str]:
    """Take the first word off ``s``: ``(word, rest)``; ``word`` is None when no word is left.

    systemd's ``extract_first_word``. With ``keep_empty`` (systemd's own behaviour) a quoted empty
    string ``""`` is a word; podman's Go port drops empty words (``keep_empty=False``).
    Raises :class:`SplitError` where systemd would fail.
    """
    n = len(s)
    i = 0
    # skip leading separators
    while i < n and s[i] in separators:
        if flags & Split.DONT_COALESCE_SEPARATORS:
            if not flags & Split.RETAIN_SEPARATORS:
                i += 1
            return "", s[i:]
        i += 1
    if i >= n:
        return None, ""

    out: list[str] = []
    quote = ""
    unquote = bool(flags & (Split.KEEP_QUOTE | Split.UNQUOTE))
    retain_escape = bool(flags & Split.RETAIN_ESCAPE)
    while True:
        c = s[i] if i < n else ""
        if quote:
            if c == "":
                if flags & Split.RELAX:
                    break
                raise SplitError("unbalanced quotes")
            if c == quote:
                quote = ""
                if not flags & Split.UNQUOTE:
                    out.append(c)
                i += 1
                continue
            if c == "\\" and not retain_escape:
                i = _escape(s, i + 1, out, separators, flags, in_quote=True)
                continue
            out.append(c)
            i += 1
            continue
        if c == "":
            break
        if c in "'\"" and unquote:
            quote = c
            if flags & Split.KEEP_QUOTE:
                out.append(c)
            i += 1
            continue
        if c == "\\" and not retain_escape:
            i = _escape(s, i + 1, out, separators, flags, in_quote=False)
            continue
        if c in separators:
            if flags & Split.DONT_COALESCE_SEPARATORS:
                if not flags & Split.RETAIN_SEPARATORS:
                    i += 1
                return "".join(out), s[i:]
            if not flags & Split.RETAIN_SEPARATORS:
                while i < n and s[i] in separators:
                    i += 1
            word = "".join(out)
            if not word and not keep_empty:
                return None, ""
            return word, s[i:]
        out.append(c)
        i += 1
    word = "".join(out)
    if not word and not keep_empty:
        return None, ""
    return word, ""


def _escape(s: str, i: int, out: list[str], separators: str, flags: Split, *, in_quote: bool) -> int:
    """Handle the character(s) after a backslash at ``s[i]``; returns the next index."""
    if i >= len(s):
        if flags & Split.UNESCAPE_RELAX and (not in_quote or flags & Split.RELAX):
            out.append("\\")
            return i + 1
        if flags & Split.RELAX:
            return i + 1
        raise SplitError("unbalanced escape")
    c = s[i]
    if flags & (Split.CUNESCAPE | Split.UNESCAPE_SEPARATORS):
        got = _cunescape_one(s[i:]) if flags & Split.CUNESCAPE else None
        if got is not None:
            out.append(got[1])
            return i + got[0]
        if flags & Split.UNESCAPE_SEPARATORS and (c in separators or c == "\\"):
            out.append(c)
        elif flags & Split.UNESCAPE_RELAX:
            out.append("\\" + c)
        else:
            raise SplitError(f"unsupported escape \\{c}")
        return i + 1
    out.append(c)
    return i + 1


def split_string(
    s: str, separators: str = WHITESPACE, flags: Split = NO_FLAGS, *, keep_empty: bool = True
) -> list[str]:
    """Split ``s`` into all its words (see :func:`extract_first_word`)."""
    words: list[str] = []
    rest = s
    for _ in range(len(s) + 1):  # each round consumes at least one character
        word, rest = extract_first_word(rest, separators, flags, keep_empty=keep_empty)
        if word is None:
            break
        words.append(word)
    return words


EXEC_FLAGS = Split.RELAX | Split.UNQUOTE | Split.CUNESCAPE
STRV_FLAGS = Split.RETAIN_ESCAPE | Split.UNQUOTE


def split_command_line(s: str, *, keep_empty: bool = True) -> list[str]:
    """Split an ``ExecStart=``-style value into its words, as systemd does (after specifiers).

    ``keep_empty=False`` gives podman's behaviour (its Go port never returns an empty word).
    """
    if _QUOTE_OR_ESCAPE.search(s) is None:  # fast path: nothing but words and whitespace
        return [w for w in _WHITESPACE_RUN.split(s) if w]
    return split_string(s, WHITESPACE, EXEC_FLAGS, keep_empty=keep_empty)


_QUOTE_OR_ESCAPE = re.compile("[\"'\\\\]")
_WHITESPACE_RUN = re.compile("[ \t\n\r]+")


def split_strv(s: str) -> list[str]:
    """Split a list value such as ``WantedBy=`` (systemd's ``config_parse_strv``): no C escapes."""
    return split_string(s, WHITESPACE, STRV_FLAGS, keep_empty=False)


# ---------------------------------------------------------------------------------------------
# Quoting


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _podman_char_needs_escape(c: str) -> bool:
    if ord(c) > 128:
        return False
    return c in GO_SPACE or _is_control(c) or c in "\"'\\"


# The characters for which _podman_char_needs_escape is true (a regex: this runs for every word).
_PODMAN_NEEDS_ESCAPE = re.compile("[\x00-\x20\x7f\x80\"'\\\\]")


def word_needs_escape(word: str) -> bool:
    """Whether podman's Quadlet would quote ``word`` (``wordNeedEscape``)."""
    return _PODMAN_NEEDS_ESCAPE.search(word) is not None


_ESCAPE_OUT = {
    "\a": "\\a",
    "\b": "\\b",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\f": "\\f",
    "\\": "\\\\",
    " ": " ",
    '"': '\\"',
    "'": "'",
}


def _podman_quote(word: str) -> str:
    parts = ['"']
    for c in word:
        if _podman_char_needs_escape(c):
            parts.append(_ESCAPE_OUT.get(c) or f"\\x{ord(c):02x}")
        else:
            parts.append(c)
    parts.append('"')
    return "".join(parts)


def escape_words(words: list[str]) -> str:
    """Join words the way podman's Quadlet does (``escapeWords``); ``%`` and ``$`` pass through.

    Byte-for-byte what Quadlet writes into ``ExecStart=``. Note that, like Quadlet, an empty word
    vanishes.
    """
    return " ".join(_podman_quote(w) if word_needs_escape(w) else w for w in words)


def _safe_needs_quote(word: str) -> bool:
    if word in ("", ";"):
        return True
    return any(c in GO_SPACE or _is_control(c) or c in "\"'\\" for c in word)


def quote_arg(arg: str, *, specifiers: bool = True, variables: bool = True) -> str:
    """Quote ``arg`` so that systemd gives back exactly ``arg`` as one word.

    ``specifiers``: escape ``%`` as ``%%`` (right for every key; systemd expands specifiers
    everywhere). ``variables``: escape ``$`` as ``$$`` (right only for ``Exec*=`` keys, where
    systemd expands ``$FOO``; elsewhere ``$$`` would stay two characters). The empty word and a
    lone ``;`` (a command separator in ``Exec*=``) are quoted. Characters above U+007F are written
    as they are (inside quotes when the word is quoted), never as ``\\x`` escapes.
    """
    if "\0" in arg:
        raise ValueError("an argument cannot contain a NUL character")
    if _safe_needs_quote(arg):
        parts = ['"']
        for c in arg:
            if ord(c) < 0x80 and (c in "\"'\\" or _is_control(c)):
                parts.append(_ESCAPE_OUT.get(c) or f"\\x{ord(c):02x}")
            else:
                parts.append(c)
        parts.append('"')
        text = "".join(parts)
    else:
        text = arg
    if specifiers:
        text = escape_specifiers(text)
    if variables:
        text = escape_variables(text)
    return text


def quote_args(args: list[str], *, specifiers: bool = True, variables: bool = True) -> str:
    """:func:`quote_arg` each argument and join them with spaces."""
    return " ".join(quote_arg(a, specifiers=specifiers, variables=variables) for a in args)


def escape_specifiers(text: str) -> str:
    """``%`` → ``%%`` so that systemd expands no specifier in ``text``."""
    return text.replace("%", "%%")


def unescape_specifiers(text: str) -> str:
    """``%%`` → ``%`` (what systemd does to a value with no other specifier)."""
    return text.replace("%%", "%")


def escape_variables(text: str) -> str:
    """``$`` → ``$$`` so that systemd expands no environment variable in an ``Exec*=`` line."""
    return text.replace("$", "$$")


# ---------------------------------------------------------------------------------------------
# Unit names (systemd-escape)

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def _escape_char_bytes(c: str) -> str:
    return "".join(f"\\x{b:02x}" for b in c.encode("utf-8"))


def unit_name_escape(text: str, *, path: bool = False) -> str:
    """What ``systemd-escape [--path] TEXT`` prints.

    ``/`` becomes ``-``; a leading ``.`` and every character outside ``[a-zA-Z0-9:_.]`` become
    ``\\xNN`` (per UTF-8 byte). With ``path``, the path is normalized first (duplicate and
    trailing slashes removed) and ``/`` alone becomes ``-``.
    """
    if path:
        parts = [p for p in text.split("/") if p]
        if not parts:
            return "-"
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"path is not normalized: {text!r}")
        text = "/".join(parts)
    out: list[str] = []
    for i, c in enumerate(text):
        if c == "/":
            out.append("-")
        elif c in _NAME_OK and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append(_escape_char_bytes(c))
    return "".join(out)


def unit_name_unescape(text: str, *, path: bool = False) -> str:
    """Inverse of :func:`unit_name_escape` (``systemd-escape --unescape [--path]``)."""
    raw = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "-":
            raw += b"/"
            i += 1
        elif c == "\\" and text[i + 1 : i + 2] == "x" and _hex(text[i + 2 : i + 4]) is not None:
            raw.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raw += c.encode("utf-8")
            i += 1
    out = raw.decode("utf-8")
    if path:
        return "/" if out == "/" else "/" + out
    return out


def path_escape(path: str) -> str:
    """Podman's ``PathEscape``: a path turned into a unit-name-like string (for drop-in names)."""
    out: list[str] = []
    for i, c in enumerate(path):
        if c == "/":
            if i != 0:
                out.append("-")
        elif c == "-":
            out.append("\\x2d")
        elif _podman_char_needs_escape(c):
            out.append(_ESCAPE_OUT.get(c) or f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)
