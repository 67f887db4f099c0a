"""Reading YAML and JSON text into plain Python values plus the file position of every key and value.

Pure: works on text that the caller has read. A `Doc` is the parsed value (dicts, lists, str, int,
float, bool, None) and a table from key paths (tuples of str keys and int list indexes) to where the
key and the value start (1-based line and column). `Doc.where(path)` finds the best position for any
path, falling back to the nearest ancestor that exists in the file.

YAML goes through PyYAML's node API (`compose`), so aliases and merge keys (`<<`) work and positions are
kept. JSON is first checked by the `json` module (its syntax errors carry line and column), then walked
by a small scanner that records positions while producing the same values as `json.loads`.
Duplicate keys are errors in both (a last-one-wins file hides mistakes).

`Collector` gathers `SpecError`s for one file so a loader can report every problem at once.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
import yaml.nodes
import yaml.reader

from specs.app import format_path
from specs.errors import Location, SpecError, SpecErrors

Key = str | int
Path = tuple[Key, ...]


@dataclass(frozen=True)
class Span:
    """Where a mapping entry's key and its value start (a list item has value only)."""

    key_line: int
    key_col: int
    line: int
    col: int


@dataclass
class Doc:
    """A parsed file: its value and the position of each key path."""

    file: str
    data: Any
    spans: dict[Path, Span] = field(default_factory=dict)

    def where(self, path: Path, at: Literal["key", "value"] = "value") -> Location:
        """Position of ``path``'s key (``at="key"``) or value; the nearest known ancestor otherwise."""
        p = tuple(path)
        while p and p not in self.spans:
            p = p[:-1]
        span = self.spans.get(p)
        if span is None:
            return Location(self.file, 1, 1)
        if at == "key":
            return Location(self.file, span.key_line, span.key_col)
        return Location(self.file, span.line, span.col)

    def has(self, path: Path) -> bool:
        return tuple(path) in self.spans


class Collector:
    """Collects the errors of one file; `raise_if_any` raises one `SpecError` or a `SpecErrors`."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.errors: list[SpecError] = []
        self._paths: set[Path] = set()

    def _first(self, path: Path) -> bool:
        """Report one error per key path: a later one is usually a consequence of the first."""
        if path in self._paths:
            return False
        self._paths.add(path)
        return True

    def error(
        self, path: Path, message: str, *, at: Literal["key", "value"] = "value", hint: str | None = None
    ) -> None:
        if not self._first(tuple(path)):
            return
        self.errors.append(
            SpecError(message, where=self.doc.where(path, at), path=format_path(path), hint=hint)
        )

    def unsupported(self, path: Path, feature: str, hint: str | None = None) -> None:
        """A known feature that Fusion does not do: ``unsupported: <feature> (file:line)``."""
        if not self._first(tuple(path)):
            return
        loc = self.doc.where(path, "key")
        self.errors.append(
            SpecError(
                f"unsupported: {feature} ({loc.file}:{loc.line})",
                where=loc,
                path=format_path(path),
                hint=hint,
            )
        )

    def raise_if_any(self) -> None:
        raise_errors(self.errors)


def pydantic_message(err: Mapping[str, Any]) -> str:
    """A pydantic error (one item of ``ValidationError.errors()``) as a message for people."""
    kind, msg, loc = err["type"], str(err["msg"]), err["loc"]
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}"
    if kind == "extra_forbidden":
        return f"unknown key {str(loc[-1])!r}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], dict | list):
        return f"{msg}, got {err['input']!r}"
    return msg


def error_list(error: SpecError | SpecErrors) -> list[SpecError]:
    """The individual errors of a `SpecError` (itself) or `SpecErrors`."""
    return list(error.errors) if isinstance(error, SpecErrors) else [error]


def raise_errors(errors: list[SpecError]) -> None:
    """Raise nothing, the one error, or all of them as `SpecErrors` (sorted by position)."""
    if not errors:
        return
    errors = sorted(errors, key=lambda e: (e.where.line, e.where.column) if e.where is not None else (0, 0))
    if len(errors) == 1:
        raise errors[0]
    raise SpecErrors(errors)


# -- YAML ------------------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_yaml(text: str, file: str) -> Doc:
    """Parse one YAML document. Syntax errors and duplicate keys raise `SpecError` with a position."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:
        raise _reader_error(e, text, file) from None
    try:
        doc = Doc(file, None)
        errors: list[SpecError] = []
        try:
            node = loader.get_single_node()
            if node is None:
                return doc
            doc.data = _walk_yaml(loader, node, (), doc, errors)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            what = e.problem or e.context or "invalid YAML"
            where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
            raise SpecError(f"invalid YAML: {what}", where=where) from None
        except yaml.reader.ReaderError as e:
            raise _reader_error(e, text, file) from None
        except yaml.YAMLError as e:
            raise SpecError(f"invalid YAML: {e}", where=Location(file)) from None
        doc.spans[()] = Span(
            node.start_mark.line + 1,
            node.start_mark.column + 1,
            node.start_mark.line + 1,
            node.start_mark.column + 1,
        )
        raise_errors(errors)
        return doc
    finally:
        loader.dispose()


def _reader_error(e: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    before = text[: e.position]
    line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
    char = chr(e.character) if isinstance(e.character, int) else e.character
    return SpecError(f"invalid YAML: character {char!r} is not allowed", where=Location(file, line, col))


def _pos(node: yaml.nodes.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _merged_pairs(
    node: yaml.nodes.MappingNode, doc: Doc, errors: list[SpecError], path: Path
) -> Iterator[tuple[yaml.nodes.Node, yaml.nodes.Node, bool]]:
    """The mapping's (key, value, from_merge) pairs, with `<<` merge keys expanded (own keys win)."""
    own: list[tuple[yaml.nodes.Node, yaml.nodes.Node]] = []
    merged: list[yaml.nodes.MappingNode] = []
    for k, v in node.value:
        if k.tag == _MERGE_TAG:
            sources = v.value if isinstance(v, yaml.nodes.SequenceNode) else [v]
            for src in sources:
                if not isinstance(src, yaml.nodes.MappingNode):
                    line, col = _pos(src)
                    errors.append(
                        SpecError(
                            "'<<' must merge a mapping",
                            where=Location(doc.file, line, col),
                            path=format_path(path),
                        )
                    )
                    continue
                merged.append(src)
        else:
            own.append((k, v))
    for k, v in own:
        yield k, v, False
    for src in merged:
        for k, v, _ in _merged_pairs(src, doc, errors, path):
            yield k, v, True


def _walk_yaml(
    loader: yaml.SafeLoader, node: yaml.nodes.Node, path: Path, doc: Doc, errors: list[SpecError]
) -> Any:
    if isinstance(node, yaml.nodes.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode, from_merge in _merged_pairs(node, doc, errors, path):
            key = loader.construct_object(knode, deep=True)
            kl, kc = _pos(knode)
            if not isinstance(key, str | int | float | bool) or key is None:
                errors.append(
                    SpecError(
                        "a key must be a plain value",
                        where=Location(doc.file, kl, kc),
                        path=format_path(path),
                    )
                )
                continue
            skey = key if isinstance(key, str) else _scalar_text(key)
            if skey in out:
                if from_merge:
                    continue  # a merged key is overridden by the mapping's own key
                first = doc.spans[(*path, skey)]
                errors.append(
                    SpecError(
                        f"duplicate key {skey!r} (first at line {first.key_line})",
                        where=Location(doc.file, kl, kc),
                        path=format_path((*path, skey)),
                    )
                )
                continue
            vl, vc = _pos(vnode)
            doc.spans[(*path, skey)] = Span(kl, kc, vl, vc)
            out[skey] = _walk_yaml(loader, vnode, (*path, skey), doc, errors)
        return out
    if isinstance(node, yaml.nodes.SequenceNode):
        items: list[Any] = []
        for i, item in enumerate(node.value):
            line, col = _pos(item)
            doc.spans[(*path, i)] = Span(line, col, line, col)
            items.append(_walk_yaml(loader, item, (*path, i), doc, errors))
        return items
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, str | int | float | bool) and value is not None:
        line, col = _pos(node)
        errors.append(
            SpecError(
                f"unsupported YAML value of type {type(value).__name__}",
                where=Location(doc.file, line, col),
                path=format_path(path),
            )
        )
        return str(value)
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- JSON ------------------------------------------------------------------------------------------

# The json module's string scanner (not in its typed API, but stable since Python 2.6).
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_WS = re.compile(r"[ \t\n\r]*")


def parse_json(text: str, file: str) -> Doc:
    """Parse JSON with positions. Syntax errors and duplicate keys raise `SpecError` with a position."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"invalid JSON: {e.msg}", where=Location(file, e.lineno, e.colno)) from None
    except RecursionError:
        raise SpecError("invalid JSON: nested too deeply", where=Location(file)) from None
    scanner = _JsonScanner(text, file)
    errors: list[SpecError] = []
    start = _WS.match(text, 0)
    idx = start.end() if start else 0
    line, col = scanner.position(idx)
    doc = Doc(file, None, {(): Span(line, col, line, col)})
    doc.data, _ = scanner.value(idx, (), doc, errors)
    raise_errors(errors)
    return doc


class _JsonScanner:
    """Walks text already known to be valid JSON, returning the same values as `json.loads`."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def position(self, idx: int) -> tuple[int, int]:
        line = bisect.bisect_left(self.newlines, idx)
        start = self.newlines[line - 1] + 1 if line else 0
        return line + 1, idx - start + 1

    def skip(self, idx: int) -> int:
        m = _WS.match(self.text, idx)
        return m.end() if m else idx

    def value(self, idx: int, path: Path, doc: Doc, errors: list[SpecError]) -> tuple[Any, int]:
        ch = self.text[idx]
        if ch == "{":
            out: dict[str, Any] = {}
            idx = self.skip(idx + 1)
            if self.text[idx] == "}":
                return out, idx + 1
            while True:
                kl, kc = self.position(idx)
                key, idx = _scanstring(self.text, idx + 1)
                idx = self.skip(self.skip(idx) + 1)  # past ':'
                vl, vc = self.position(idx)
                if key in out:
                    first = doc.spans[(*path, key)]
                    errors.append(
                        SpecError(
                            f"duplicate key {key!r} (first at line {first.key_line})",
                            where=Location(self.file, kl, kc),
                            path=format_path((*path, key)),
                        )
                    )
                    _, idx = self.value(idx, (*path, key, "<duplicate>"), Doc(self.file, None), [])
                else:
                    doc.spans[(*path, key)] = Span(kl, kc, vl, vc)
                    out[key], idx = self.value(idx, (*path, key), doc, errors)
                idx = self.skip(idx)
                if self.text[idx] == "}":
                    return out, idx + 1
                idx = self.skip(idx + 1)  # past ','
        if ch == "[":
            items: list[Any] = []
            idx = self.skip(idx + 1)
            if self.text[idx] == "]":
                return items, idx + 1
            while True:
                line, col = self.position(idx)
                doc.spans[(*path, len(items))] = Span(line, col, line, col)
                item, idx = self.value(idx, (*path, len(items)), doc, errors)
                items.append(item)
                idx = self.skip(idx)
                if self.text[idx] == "]":
                    return items, idx + 1
                idx = self.skip(idx + 1)
        if ch == '"':
            return _scanstring(self.text, idx + 1)
        for literal, val in (
            ("true", True),
            ("false", False),
            ("null", None),
            ("NaN", float("nan")),
            ("Infinity", float("inf")),
            ("-Infinity", float("-inf")),
        ):
            if self.text.startswith(literal, idx):
                return val, idx + len(literal)
        m = json.scanner.NUMBER_RE.match(self.text, idx)
        assert m is not None, "json.loads accepted this text"
        integer, frac, exp = m.groups()
        if frac or exp:
            return float(integer + (frac or "") + (exp or "")), m.end()
        return int(integer), m.end()


def looks_like_json(text: str, filename: str) -> bool:
    """JSON by extension, or by content when the first non-blank character opens an object."""
    if filename.lower().endswith(".json"):
        return True
    if filename.lower().endswith((".yaml", ".yml")):
        return False
    return text.lstrip().startswith("{")
