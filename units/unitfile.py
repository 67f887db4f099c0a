"""A systemd unit file as a value: parse, look up, edit, render.

Pure, no I/O (the caller reads and writes files). The semantics are those of podman's
``pkg/systemd/parser/unitfile.go`` (what Quadlet 5.4 uses), because Quadlet's output depends on
them:

* A line is trimmed of surrounding whitespace. Empty lines and lines starting with ``#`` or ``;``
  are comments. ``[Name]`` (optionally followed by blanks) starts a section. ``Key=Value`` is an
  entry (whitespace around ``=`` is dropped). Anything else, or an entry before the first section,
  is an error (:class:`UnitFileError`, naming ``file:line``).
* A line ending in ``\\`` continues on the next line: the backslash is dropped and the next
  (trimmed) line appended with nothing in between; comment lines inside a continuation are
  skipped. (A continuation still open at the end of the file is dropped, as podman does.)
* A section that appears twice is one section: the second block's lines are appended to the
  first (so :meth:`UnitFile.render` writes it once).
* Repeated keys are kept in order. :meth:`UnitFile.lookup_all` follows systemd: an empty
  assignment (``Key=``) resets the list.

Round trip. Every parsed line keeps its original spelling, so:

* ``UnitFile.parse(t).render() == t`` for every text ``t`` that parses, ends with a newline (or is
  empty) and names each section at most once. (A file without a final newline gains one.)
* ``UnitFile.parse(u.render()) == u`` for every unit ``u``. Equality compares the content (section
  order, comments, keys, values, whether a blank line separates sections), not the spelling of
  parsed lines.

Spellings are dropped where podman drops them: :meth:`UnitFile.merge` and :meth:`UnitFile.dup`
copy values (``Key = a \\`` + ``b`` becomes ``Key=a b``), which is what Quadlet writes.

Values set from code are checked: newlines, carriage returns, NUL, surrounding whitespace and a
trailing backslash are rejected, so no value can add a directive or change on the way back in.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

from specs.errors import Location, SpecError
from units import systemd

__all__ = ["UnitFile", "UnitFileError"]


class UnitFileError(SpecError):
    """A unit file cannot be parsed, or a value cannot be written into one."""


_ASCII_SPACE = " \t\n\v\f\r"


def _go_trim(s: str) -> str:
    return s.strip(systemd.GO_SPACE)


@dataclasses.dataclass
class _Line:
    """One logical line: a comment (``key`` is None, ``value`` is the trimmed text) or an entry."""

    key: str | None
    value: str
    raw: str | None = None  # the source text (several physical lines for a continuation)
    dangling: bool = False  # a continuation left open at the end of the file (no meaning)

    def render(self) -> str:
        if self.raw is not None:
            return self.raw
        if self.key is None:
            return self.value
        return f"{self.key}={self.value}"

    def content(self) -> tuple[str | None, str]:
        # compared as the parser would read it back: comments trimmed; an entry's trailing blanks
        # (possible only in a file's last line, "Key=value \\") dropped
        if self.key is None:
            return (None, _go_trim(self.value))
        return (self.key, self.value.rstrip(systemd.GO_SPACE))

    def plain(self) -> _Line:
        return _Line(self.key, self.value)

    def continues(self) -> bool:
        """Whether the source spelling would continue onto a following line (see ``render``)."""
        if self.raw is None:
            return False
        if self.key is None:  # comments never continue; an open continuation always does
            return self.dangling
        return _go_trim(self.raw.split("\n")[-1]).endswith("\\")


_AUTO = "auto"


@dataclasses.dataclass
class _Section:
    name: str
    comments: list[_Line] = dataclasses.field(default_factory=list)  # lines before the header
    lines: list[_Line] = dataclasses.field(default_factory=list)
    header_raw: str | None = None
    # The blank line written before this section: _AUTO (one, unless it is the first section),
    # None (none), or the source text of the blank line the parser took away.
    separator: str | None = _AUTO

    def find_last(self, key: str) -> _Line | None:
        for line in reversed(self.lines):
            if line.key == key:
                return line
        return None


def _check_value(value: str, what: str) -> None:
    for bad, name in (("\n", "a newline"), ("\r", "a carriage return"), ("\0", "a NUL character")):
        if bad in value:
            raise UnitFileError(f"{what} cannot contain {name}: {value!r}")
    if value != _go_trim(value):
        raise UnitFileError(f"{what} cannot start or end with whitespace: {value!r}")
    if value.endswith("\\"):
        raise UnitFileError(f"{what} cannot end with a backslash (it would continue the line): {value!r}")


def _check_key(key: str) -> None:
    _check_value(key, "a key")
    if not key or "=" in key or key[0] in "#;[":
        raise UnitFileError(f"invalid key name: {key!r}")


@functools.lru_cache(maxsize=64)  # a handful of section names, checked on every add
def _check_section(name: str) -> None:
    if not name or any(c in "[]" or systemd._is_control(c) for c in name):
        raise UnitFileError(f"invalid section name: {name!r}")
    _check_value(name, "a section name")


class UnitFile:
    """A unit file (see the module docstring for the rules). ``filename`` is the base name."""

    def __init__(self, filename: str = "", path: str = "") -> None:
        self.filename = filename
        self.path = path
        self._sections: list[_Section] = []

    # -- parsing and rendering -------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, filename: str = "", path: str = "") -> UnitFile:
        """Parse unit-file text; raises :class:`UnitFileError` with ``file:line`` on bad syntax."""
        unit = cls(filename=filename, path=path)
        where_name = path or filename or "<unit>"
        physical = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        if text == "":
            physical = []
        current: _Section | None = None
        pending: list[_Line] = []
        cont_text = ""  # the joined value of an open continuation
        cont_raw: list[str] = []
        cont_start = 0

        def flush(to_comments: bool) -> None:
            assert current is not None
            (current.comments if to_comments else current.lines).extend(pending)
            pending.clear()

        for idx, raw_line in enumerate(physical):
            line = _go_trim(raw_line)
            if not line or line[0] in "#;":
                if cont_raw:
                    cont_raw.append(raw_line)
                    continue
                pending.append(_Line(None, line, raw_line))
                continue
            if line.endswith("\\"):
                line = line[:-1]
                if idx != len(physical) - 1:
                    if not cont_raw:
                        cont_start = idx
                    cont_text += line
                    cont_raw.append(raw_line)
                    continue
            start = idx
            if cont_raw:
                line = cont_text + line
                raw = "\n".join([*cont_raw, raw_line])
                start = cont_start
                cont_text, cont_raw = "", []
            else:
                raw = raw_line
            where = Location(where_name, start + 1)

            if line.startswith("[") and "]" in line and not line[line.index("]") + 1 :].strip(" \t"):
                name = line[1 : line.index("]")]
                if not name or any(c in "[]" or systemd._is_control(c) for c in name):
                    raise UnitFileError(f"invalid group name: {name}", where=where)
                current = unit._ensure(name)
                current.header_raw = raw
                separator: str | None = None
                if pending and pending[0].key is None and pending[0].value == "":
                    separator = pending.pop(0).raw
                if not current.comments and not current.lines:
                    current.separator = separator
                else:  # a repeated section: keep the blank line as an ordinary comment
                    if separator is not None:
                        pending.insert(0, _Line(None, "", separator))
                flush(True)
                continue
            eq = line.find("=")
            if eq <= 0:
                raise UnitFileError(
                    f"file contains line {idx + 1}: \u201c{line}\u201d which is not a key-value pair, group, or comment",
                    where=where,
                )
            if current is None:
                raise UnitFileError("key file does not start with a group", where=where)
            key = line[:eq].rstrip(_ASCII_SPACE)
            if not key or key[0] == " " or key[-1] == " ":
                raise UnitFileError(f"invalid key name: {key}", where=where)
            value = line[eq + 1 :].lstrip(_ASCII_SPACE)
            flush(False)
            current.lines.append(_Line(key, value, raw))

        if cont_raw:
            # podman drops an entry whose continuation runs off the end; keep its text as a comment-
            # like line that has no meaning, so that the text still round-trips.
            pending.append(_Line(None, "", "\n".join(cont_raw), dangling=True))
        if current is None:
            if not pending:
                return unit
            current = unit._ensure("")
            current.separator = None
        flush(False)
        return unit

    def render(self) -> str:
        """The unit-file text (podman's ``Write``)."""
        items: list[tuple[str, _Line | None]] = []
        for i, section in enumerate(self._sections):
            if section.separator == _AUTO:
                if i != 0:
                    items.append(("", None))
            elif section.separator is not None:
                items.append((section.separator, None))
            items.extend((c.render(), c) for c in section.comments)
            if section.name == "":
                # comment-only files (no section): their comments are written
                items.extend((c.render(), c) for c in section.lines)
                continue
            items.append((section.header_raw if section.header_raw is not None else f"[{section.name}]", None))
            items.extend((line.render(), line) for line in section.lines)
        # A spelling that ends in a backslash was the file's last line; anywhere else it would
        # continue onto the next line, so it is written plainly there.
        for n, (_text, line) in enumerate(items[:-1]):
            if line is not None and line.continues():
                items[n] = (line.plain().render(), line)
        return "".join(text + "\n" for text, _ in items)

    def __str__(self) -> str:
        return self.render()

    def _content(self) -> tuple[object, ...]:
        """What equality compares: the content as a parser would read the rendered text back.

        A blank line before a header is the same as a blank comment line there, and text before
        the first section belongs to that section's comments once parsed back.
        """
        rows: list[tuple[str, list[tuple[str | None, str]], list[tuple[str | None, str]]]] = []
        for i, s in enumerate(self._sections):
            blank = (i != 0) if s.separator == _AUTO else s.separator is not None
            comments = ([(None, "")] if blank else []) + [c.content() for c in s.comments]
            rows.append((s.name, comments, [x.content() for x in s.lines]))
        if rows and rows[0][0] == "":
            _, comments, lines = rows.pop(0)
            if rows:
                name, next_comments, next_lines = rows[0]
                rows[0] = (name, comments + lines + next_comments, next_lines)
            elif comments or lines:
                rows.append(("", comments + lines, []))
        # Comment lines after a section's last key are read back as the next section's comments.
        for i in range(len(rows) - 1):
            name, comments, lines = rows[i]
            cut = len(lines)
            while cut > 0 and lines[cut - 1][0] is None:
                cut -= 1
            if cut < len(lines):
                n_name, n_comments, n_lines = rows[i + 1]
                rows[i] = (name, comments, lines[:cut])
                rows[i + 1] = (n_name, lines[cut:] + n_comments, n_lines)
        return tuple((n, tuple(c), tuple(x)) for n, c, x in rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitFile):
            return NotImplemented
        return self._content() == other._content()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"UnitFile(filename={self.filename!r}, sections={self.sections()!r})"

    # -- copies ------------------------------------------------------------------------------

    def copy(self) -> UnitFile:
        """An exact, independent copy (spelling of parsed lines included)."""
        new = UnitFile(self.filename, self.path)
        new._sections = [
            _Section(
                s.name,
                [dataclasses.replace(c) for c in s.comments],
                [dataclasses.replace(line) for line in s.lines],
                s.header_raw,
                s.separator,
            )
            for s in self._sections
        ]
        return new

    def dup(self) -> UnitFile:
        """podman's ``Dup``: a fresh unit with this one's content merged in (spellings normalized)."""
        new = UnitFile(self.filename)
        new.merge(self)
        return new

    def merge(self, other: UnitFile) -> None:
        """Append ``other``'s sections (comments and lines) to this unit's, as podman's ``Merge``.

        Used for drop-ins: a later drop-in's entries come after earlier ones, so ``lookup_last``
        sees the drop-in's value and ``Key=`` in a drop-in resets a list.
        """
        for src in other._sections:
            dst = self._ensure(src.name)
            dst.comments.extend(c.plain() for c in src.comments)
            dst.lines.extend(line.plain() for line in src.lines)

    # -- sections ----------------------------------------------------------------------------

    def _find(self, name: str) -> _Section | None:
        for s in self._sections:
            if s.name == name:
                return s
        return None

    def _ensure(self, name: str) -> _Section:
        s = self._find(name)
        if s is None:
            s = _Section(name)
            self._sections.append(s)
        return s

    def sections(self) -> list[str]:
        return [s.name for s in self._sections]

    def has_section(self, section: str) -> bool:
        return self._find(section) is not None

    def remove_section(self, section: str) -> None:
        self._sections = [s for s in self._sections if s.name != section]

    def rename_section(self, old: str, new: str) -> None:
        """Rename a section; if ``new`` exists already, ``old``'s lines are appended to it."""
        _check_section(new)
        src = self._find(old)
        if src is None or old == new:
            return
        dst = self._find(new)
        if dst is None:
            src.name = new
            return
        dst.comments.extend(c.plain() for c in src.comments)
        dst.lines.extend(line.plain() for line in src.lines)
        self.remove_section(old)

    # -- lookups -------------------------------------------------------------------------------

    def keys(self, section: str) -> list[str]:
        """The distinct keys of a section, in order of first appearance."""
        s = self._find(section)
        seen: dict[str, None] = {}
        if s is not None:
            for line in s.lines:
                if line.key is not None:
                    seen.setdefault(line.key, None)
        return list(seen)

    def has_key(self, section: str, key: str) -> bool:
        return self.lookup_last(section, key) is not None

    def lookup_last(self, section: str, key: str) -> str | None:
        """The last value of ``key`` as written (podman ``LookupLast``), or None."""
        s = self._find(section)
        line = s.find_last(key) if s is not None else None
        return None if line is None else line.value

    def lookup(self, section: str, key: str) -> str | None:
        """podman's ``Lookup``: the last value without trailing blanks and one ``"..."`` pair."""
        v = self.lookup_last(section, key)
        if v is None:
            return None
        v = v.rstrip(systemd.GO_SPACE)
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1]
        return v

    def lookup_all(self, section: str, key: str) -> list[str]:
        """Every value of ``key`` in order; an empty assignment resets the list (systemd, podman)."""
        s = self._find(section)
        values: list[str] = []
        if s is not None:
            for line in s.lines:
                if line.key == key:
                    if line.value == "":
                        values = []
                    else:
                        values.append(line.value)
        return values

    def lookup_last_args(self, section: str, key: str) -> list[str] | None:
        """The last value split into words with systemd's ``Exec*=`` rules, or None if absent.

        Raises :class:`UnitFileError` if the value cannot be split. Empty words are dropped, as
        podman does.
        """
        v = self.lookup_last(section, key)
        if v is None:
            return None
        try:
            return systemd.split_command_line(v, keep_empty=False)
        except systemd.SplitError as e:
            raise UnitFileError(f"{section}.{key}: {e}", where=Location(self.path or self.filename)) from e

    def lookup_all_args(self, section: str, key: str) -> list[str]:
        """All values, each split with ``Exec*=`` rules, concatenated (values that fail are skipped)."""
        res: list[str] = []
        for v in self.lookup_all(section, key):
            try:
                res.extend(systemd.split_command_line(v, keep_empty=False))
            except systemd.SplitError:
                continue
        return res

    def lookup_all_strv(self, section: str, key: str) -> list[str]:
        """All values split on whitespace, quotes removed, backslashes kept (``WantedBy=`` style)."""
        res: list[str] = []
        for v in self.lookup_all(section, key):
            try:
                res.extend(systemd.split_strv(v))
            except systemd.SplitError:  # pragma: no cover - strv splitting cannot fail
                continue
        return res

    def lookup_all_key_val(self, section: str, key: str) -> dict[str, str]:
        """podman 5.4's ``LookupAllKeyVal`` (``Environment=``, ``Label=``): words ``K=V`` → {K: V}.

        Each value is split with ``Exec*=`` rules; a later ``K`` wins; a word without ``=`` is
        ignored (as podman 5.4 does); values that cannot be split are skipped.
        """
        res: dict[str, str] = {}
        for v in self.lookup_all(section, key):
            try:
                words = systemd.split_command_line(v, keep_empty=False)
            except systemd.SplitError:
                continue
            for w in words:
                k, sep, val = w.partition("=")
                if sep:
                    res[k] = val
        return res

    def lookup_bool(self, section: str, key: str) -> bool | None:
        """podman's ``LookupBoolean``: None if absent; True for 1/yes/true/on (any case), else False."""
        v = self.lookup(section, key)
        if v is None:
            return None
        return v.lower() in ("1", "yes", "true", "on")

    def lookup_int(self, section: str, key: str, default: int | None = None) -> int | None:
        """The last value as an integer with C ``strtol`` prefixes (``0x``, ``0``), else ``default``."""
        v = self.lookup(section, key)
        if v is None:
            return default
        sign = 1
        if v[:1] in "+-" and v:
            sign = -1 if v[0] == "-" else 1
            v = v[1:]
        try:
            if v[:2].lower() == "0x":
                n = int(v[2:], 16)
            elif v.startswith("0"):
                n = int(v, 8)
            else:
                n = int(v, 10)
        except ValueError:
            return default
        if "_" in v or v != v.strip():
            return default
        return sign * n

    def lookup_uint32(self, section: str, key: str, default: int) -> int:
        v = self.lookup_int(section, key, default)
        return default if v is None or v < 0 or v > 0xFFFFFFFF else v

    # -- edits ---------------------------------------------------------------------------------

    def add(self, section: str, key: str, value: str) -> None:
        """Append ``key=value`` to a section (created at the end if missing)."""
        _check_section(section)
        _check_key(key)
        if value:
            _check_value(value, f"the value of {key}")
        self._ensure(section).lines.append(_Line(key, value))

    def add_many(self, section: str, key: str, values: Iterable[str]) -> None:
        for v in values:
            self.add(section, key, v)

    def set(self, section: str, key: str, value: str) -> None:
        """Make ``value`` the only value of ``key`` (its first occurrence keeps its place)."""
        _check_section(section)
        _check_key(key)
        if value:
            _check_value(value, f"the value of {key}")
        s = self._ensure(section)
        kept: list[_Line] = []
        placed = False
        for line in s.lines:
            if line.key == key:
                if not placed:
                    kept.append(_Line(key, value))
                    placed = True
                continue
            kept.append(line)
        if not placed:
            kept.append(_Line(key, value))
        s.lines = kept

    def set_last(self, section: str, key: str, value: str) -> None:
        """podman's ``Set``: replace the value of the last occurrence of ``key``, or add it."""
        _check_section(section)
        _check_key(key)
        if value:
            _check_value(value, f"the value of {key}")
        s = self._ensure(section)
        line = s.find_last(key)
        if line is None:
            s.lines.append(_Line(key, value))
        else:
            line.value, line.raw = value, None

    def unset(self, section: str, key: str) -> None:
        """Remove every occurrence of ``key`` from ``section``."""
        s = self._find(section)
        if s is not None:
            s.lines = [line for line in s.lines if line.key != key]

    def prepend(self, section: str, key: str, value: str) -> None:
        """Insert ``key=value`` as the first line of ``section`` (podman's ``PrependUnitLine``)."""
        _check_section(section)
        _check_key(key)
        if value:
            _check_value(value, f"the value of {key}")
        self._ensure(section).lines.insert(0, _Line(key, value))

    def add_cmdline(self, section: str, key: str, args: list[str], *, literal: bool = True) -> None:
        """Add ``key=`` with ``args`` quoted so that systemd splits the value back into ``args``.

        ``literal=True`` (Fusion's own values): ``%`` is written ``%%`` and, in ``Exec*=`` keys,
        ``$`` is written ``$$``, so no specifier or variable can be injected; empty words and a lone
        ``;`` are quoted; newlines and other control characters become C escapes. The first word's
        ``Exec*=`` prefixes (``-``, ``@``, ``:``, ``+``, ``!``) are still systemd's to interpret.
        ``literal=False`` is Quadlet's ``AddCmdline`` byte for byte: specifiers and variables the
        user wrote stay active (Quadlet files use ``%h``, ``%N`` on purpose).
        """
        if not args:
            raise UnitFileError(f"{key}: an empty command line would reset the key")
        for a in args:
            if "\0" in a:
                raise UnitFileError(f"an argument of {key} cannot contain a NUL character: {a!r}")
        if literal:
            value = systemd.quote_args(args, specifiers=True, variables=key.startswith("Exec"))
        else:
            value = systemd.escape_words(args)
        self.add(section, key, value)

    def add_escaped(self, section: str, key: str, value: str) -> None:
        """podman's ``AddEscaped``: one word, quoted only if it needs quoting (no ``%`` escaping)."""
        if "\n" in value or "\r" in value or "\0" in value:
            raise UnitFileError(f"the value of {key} cannot contain a newline or NUL: {value!r}")
        self.add(section, key, systemd.escape_words([value]) if value else value)

    def _comment_section(self, section: str) -> _Section:
        if section == "" and self._sections:
            return self._sections[0]
        if section:
            _check_section(section)
        return self._ensure(section)

    def prepend_comment(self, section: str, *texts: str) -> None:
        """Put ``# text`` lines before the section header (``""``: before the first section)."""
        for t in texts:
            _check_comment(t)
        s = self._comment_section(section)
        s.comments[:0] = [_Line(None, "# " + t) for t in texts]

    def add_comment(self, section: str, *texts: str) -> None:
        """Append ``# text`` lines to those before the section header."""
        for t in texts:
            _check_comment(t)
        s = self._comment_section(section)
        s.comments.extend(_Line(None, "# " + t) for t in texts)

    # -- names -----------------------------------------------------------------------------------

    def template_parts(self) -> tuple[str, str, bool]:
        """``(unit name, instance, is template)`` from ``filename``: ``a@b.container`` → (a, b, True)."""
        base, _, _ext = self.filename.rpartition(".")
        if not _:
            base = self.filename
        unit, at, instance = base.partition("@")
        return unit, instance, bool(at)

    def dropin_dirs(self) -> list[str]:
        """Drop-in directory names to search, most specific first (podman ``GetUnitDropinPaths``).

        For ``foo-bar@i.container``: ``foo-bar@i.container.d``, ``foo-bar@.container.d``,
        ``foo-@.container.d``, ``foo-.container.d``, ``container.d``.
        """
        unit, instance, is_template = self.template_parts()
        ext = "." + self.filename.rpartition(".")[2] if "." in self.filename else ""
        dropin_ext = ext + ".d"
        paths = [dropin_ext.lstrip(".")]
        parts = unit.split("-")
        if len(parts) > 1:
            for i in range(len(parts) - 1):
                prefix = "-".join(parts[: i + 1]) + "-"
                paths.append(prefix + dropin_ext)
                if is_template:
                    paths.append(prefix + "@" + dropin_ext)
        if instance:
            paths.append(unit + "@" + dropin_ext)
        paths.append(self.filename + ".d")
        paths.reverse()
        return paths


def _check_comment(text: str) -> None:
    if "\n" in text or "\r" in text or "\0" in text:
        raise UnitFileError(f"a comment cannot contain a newline: {text!r}")
