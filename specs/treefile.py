"""Treefiles: the YAML that describes a Fusion host tree (an OSTree commit built from Debian).

Pure: :func:`load_treefile` reads one file; everything else is values. Errors are
:class:`~specs.errors.SpecErrors` naming ``file:line:col: key.path: what is wrong``.

A treefile looks like::

    ref: fusion/trixie/x86_64/host     # the OSTree branch the tree is committed to
    version: "1"                       # optional: otherwise "<YYYYMMDD>.<n>" is chosen at compose time
    osname: fusion                     # the stateroot hosts deploy it under
    bootstrap: debootstrap             # or "busybox": a tiny static tree for tests (no apt)
    suite: trixie
    mirror: http://deb.debian.org/debian
    packages: [systemd, systemd-sysv, dbus, podman]
    local-packages: [debs/hello_1.0_all.deb]   # .deb files, relative to the treefile
    files:
      - path: /etc/motd
        content: "hello\\n"
      - path: /usr/local/bin/tool
        source: files/tool                      # relative to the treefile
        mode: "0755"
    units:
      - name: hello.service
        content: |
          [Service]
          ExecStart=/bin/true
    enable: [hello.service]
    postprocess: |                     # a shell script run chrooted in the tree, before the OSTree layout
      echo done
    install-fusion: true               # put Fusion itself into /usr/lib/fusion (default true)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from specs.errors import Location, SpecError, SpecErrors

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
_OSNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_-]*$")
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|target|mount|path|slice|automount)$")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*$")

# OSTree owns these: a tree may not ship files there (they are per-host state or made at boot).
_FORBIDDEN_PREFIXES = ("/var", "/run", "/proc", "/sys", "/dev", "/tmp", "/sysroot", "/ostree", "/boot")


class TreeFileEntry(BaseModel):
    """One file to put into the tree: inline ``content`` or a ``source`` file next to the treefile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    content: str | None = None
    source: str | None = None
    mode: int = 0o644

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        p = PurePosixPath(v)
        if not p.is_absolute() or ".." in p.parts or v.endswith("/"):
            raise ValueError("must be an absolute file path without '..'")
        for prefix in _FORBIDDEN_PREFIXES:
            if v == prefix or v.startswith(prefix + "/"):
                raise ValueError(f"{prefix} is not part of an OSTree tree (use a tmpfiles.d entry for /var)")
        return str(p)

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not re.fullmatch(r"0?[0-7]{3,4}", v):
                raise ValueError("must be an octal mode such as \"0644\"")
            return int(v, 8)
        return v

    @model_validator(mode="after")
    def _one_source(self) -> TreeFileEntry:
        if (self.content is None) == (self.source is None):
            raise ValueError("give exactly one of 'content' or 'source'")
        if not 0 <= self.mode <= 0o7777:
            raise ValueError("mode out of range")
        return self


class TreeUnit(BaseModel):
    """A systemd unit shipped in the tree's /usr/lib/systemd/system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    content: str

    @field_validator("name")
    @classmethod
    def _unit_name(cls, v: str) -> str:
        if not _UNIT_RE.match(v):
            raise ValueError(f"{v!r} is not a systemd unit name (e.g. web.service)")
        return v


class TreeFile(BaseModel):
    """A host tree: where it is committed, what goes in, how it is post-processed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    ref: str
    version: str | None = None
    osname: str = "fusion"
    bootstrap: Literal["debootstrap", "busybox"] = "debootstrap"
    suite: str = "trixie"
    mirror: str = "http://deb.debian.org/debian"
    variant: Literal["minbase", "buildd"] = "minbase"
    packages: tuple[str, ...] = ()
    local_packages: tuple[str, ...] = Field(default=(), alias="local-packages")
    files: tuple[TreeFileEntry, ...] = ()
    units: tuple[TreeUnit, ...] = ()
    enable: tuple[str, ...] = ()
    postprocess: str | None = None
    install_fusion: bool = Field(default=True, alias="install-fusion")
    # Where the treefile was read from (relative paths resolve against it); not a YAML key.
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not _REF_RE.match(v):
            raise ValueError(f"{v!r} is not an OSTree ref (letters, digits, '._-' separated by '/')")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not _VERSION_RE.match(v):
            raise ValueError(f"{v!r} is not a version (letters, digits and '.+~_-')")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("osname")
    @classmethod
    def _osname(cls, v: str) -> str:
        if not _OSNAME_RE.match(v):
            raise ValueError(f"{v!r} is not an OS name (letters, digits, '._-')")
        return v

    @field_validator("suite")
    @classmethod
    def _suite(cls, v: str) -> str:
        if not _SUITE_RE.match(v):
            raise ValueError(f"{v!r} is not a Debian suite name (e.g. trixie)")
        return v

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, v: str) -> str:
        if not re.match(r"^(https?|file)://\S+$", v):
            raise ValueError("must be an http(s):// or file:// URL")
        return v

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _PACKAGE_RE.match(name):
                raise ValueError(f"{name!r} is not a Debian package name")
        dupes = sorted({n for n in v if v.count(n) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return v

    @field_validator("local_packages")
    @classmethod
    def _debs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not name.endswith(".deb"):
                raise ValueError(f"{name!r} is not a .deb file")
        return v

    @field_validator("enable")
    @classmethod
    def _enable(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _UNIT_RE.match(name):
                raise ValueError(f"{name!r} is not a systemd unit name (e.g. web.service)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TreeFile:
        if self.bootstrap == "busybox" and self.packages:
            raise ValueError("'packages' needs 'bootstrap: debootstrap' (a busybox tree has no apt)")
        paths = [f.path for f in self.files]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"files listed twice: {', '.join(dupes)}")
        return self

    def resolve(self, relative: str) -> Path:
        """A path from the treefile (``source``, ``local-packages``) resolved against its folder."""
        p = Path(relative)
        return p if p.is_absolute() else Path(self.base_dir) / p


# --- YAML with positions -------------------------------------------------------------------------

Positions = dict[tuple[str | int, ...], tuple[int, int]]


def _walk(node: yaml.Node, path: tuple[str | int, ...], out: Positions) -> None:
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out[sub] = (key.start_mark.line + 1, key.start_mark.column + 1)
            _walk(value, sub, out)
            out[sub] = (key.start_mark.line + 1, key.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def _position(positions: Positions, loc: tuple[str | int, ...]) -> tuple[int, int]:
    """The line/column of the deepest known prefix of ``loc``."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return (0, 0)


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def _iter_errors(e: ValidationError) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for err in e.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        yield loc, msg


def parse_treefile(text: str, *, filename: str = "<treefile>", base_dir: str = ".") -> TreeFile:
    """Parse and validate treefile text. Raises :class:`SpecErrors` with file:line positions."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = Location(filename, mark.line + 1, mark.column + 1) if mark else Location(filename)
        problem = getattr(e, "problem", None) or str(e)
        raise SpecErrors([SpecError(f"not valid YAML: {problem}", where=where)]) from None
    if not isinstance(data, dict):
        raise SpecErrors([SpecError("a treefile is a YAML mapping (ref:, packages:, ...)",
                                    where=Location(filename, 1))])
    positions: Positions = {}
    if node is not None:
        _walk(node, (), positions)
    if "base_dir" in data:
        line, col = positions.get(("base_dir",), (0, 0))
        raise SpecErrors([SpecError("unknown key", where=Location(filename, line, col), path="base_dir")])
    try:
        return TreeFile.model_validate({**data, "base_dir": base_dir})
    except ValidationError as e:
        errors = []
        for loc, msg in _iter_errors(e):
            line, col = _position(positions, loc)
            errors.append(SpecError(msg, where=Location(filename, line, col), path=_dotted(loc)))
        raise SpecErrors(errors) from None


def load_treefile(path: Path | str) -> TreeFile:
    """Read a treefile from disk (relative paths in it resolve against its folder)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpecErrors([SpecError(f"cannot read treefile: {e.strerror}", where=Location(str(p)))]) from None
    return parse_treefile(text, filename=str(p), base_dir=str(p.parent.resolve()))
