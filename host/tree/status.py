"""Deployments of a sysroot as values: parsers for ostree's output and rpm-ostree-style rendering.

Pure functions only (recorded outputs in tests/unit). The shell that runs ``ostree`` is ops.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from specs.errors import FusionError


@dataclass(frozen=True)
class Deployment:
    """One deployment, with the fields of ``rpm-ostree status --json`` (plus ``index``/``pending``)."""

    index: int
    osname: str
    checksum: str
    serial: int
    booted: bool = False
    staged: bool = False
    pending: bool = False
    rollback: bool = False
    pinned: bool = False
    unlocked: str = "none"
    version: str | None = None
    origin: str | None = None  # the refspec, "remote:ref"
    timestamp: int | None = None
    base_checksum: str | None = None  # set when packages are layered on top of a base commit
    layered_packages: tuple[str, ...] = ()
    override_commit: str | None = None
    default: bool = False

    @property
    def id(self) -> str:
        return f"{self.osname}-{self.checksum}.{self.serial}"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        return {
            "id": self.id,
            "index": self.index,
            "osname": self.osname,
            "serial": self.serial,
            "checksum": self.checksum,
            "base-checksum": self.base_checksum or self.checksum,
            "version": self.version,
            "timestamp": self.timestamp,
            "origin": self.origin,
            "booted": self.booted,
            "staged": self.staged,
            "pending": self.pending,
            "rollback": self.rollback,
            "default": self.default,
            "pinned": self.pinned,
            "unlocked": self.unlocked,
            "packages": list(d["layered_packages"]),
            "requested-local-packages": list(d["layered_packages"]),
            "override-commit": self.override_commit,
        }


_HEAD_RE = re.compile(r"^(?P<mark>[* ]) (?P<os>\S+) (?P<csum>[0-9a-f]{64})\.(?P<serial>\d+)(?P<rest>.*)$")


def parse_admin_status(text: str) -> list[Deployment]:
    """Parse ``ostree admin status`` (2022.7 and later) into deployments, in boot order."""
    out: list[Deployment] = []
    cur: dict[str, object] | None = None

    def flush() -> None:
        if cur is not None:
            out.append(Deployment(**cur))  # type: ignore[arg-type]

    for raw in text.splitlines():
        line = raw.rstrip()
        m = _HEAD_RE.match(line)
        if m:
            flush()
            rest = m["rest"]
            cur = {
                "index": len(out), "osname": m["os"], "checksum": m["csum"], "serial": int(m["serial"]),
                "booted": m["mark"] == "*", "staged": "(staged)" in rest,
                "pending": "(pending)" in rest, "rollback": "(rollback)" in rest,
            }
            continue
        if cur is None:
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            if line.strip() == "Deployment is staged":  # older wording
                cur["staged"] = True
            continue
        value = value.strip()
        if key == "Version":
            cur["version"] = value
        elif key == "Pinned":
            cur["pinned"] = value == "yes"
        elif key == "origin refspec":
            cur["origin"] = value
        elif key == "Unlocked":
            cur["unlocked"] = value
    flush()
    return _mark_default(out)


def _mark_default(deps: list[Deployment]) -> list[Deployment]:
    """The first deployment of the list is what the boot loader boots next."""
    return [replace(d, default=(i == 0)) for i, d in enumerate(deps)]


def mark_roles(deps: list[Deployment]) -> list[Deployment]:
    """rpm-ostree's markers. ``pending``: the default when another one is booted. ``rollback``: the
    first deployment of the same OS after the booted one (after the default when nothing is booted,
    as in an offline sysroot: then nothing is pending)."""
    if not deps:
        return deps
    booted = next((d for d in deps if d.booted), None)
    anchor = booted or deps[0]
    rollback = next((d for d in deps if d.index > anchor.index and d.osname == anchor.osname
                     and d.index != 0), None)
    return [replace(d, default=(d.index == 0), pending=(d.index == 0 and booted is not None and not d.booted),
                    rollback=(rollback is not None and d.index == rollback.index))
            for d in deps]


@dataclass(frozen=True)
class CommitInfo:
    checksum: str
    parent: str | None = None
    timestamp: int | None = None
    version: str | None = None
    subject: str = ""
    content: str | None = None  # the ContentChecksum: equal for commits of identical trees
    metadata: dict[str, str] = field(default_factory=dict)


def parse_show(text: str) -> CommitInfo:
    """Parse ``ostree show REV`` (one commit)."""
    csum, parent, ts, version, subject, content = "", None, None, None, "", None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("commit "):
            csum = line.split()[1]
        elif line.startswith("Parent:"):
            parent = line.split(":", 1)[1].strip() or None
        elif line.startswith("ContentChecksum:"):
            content = line.split(":", 1)[1].strip()
        elif line.startswith("Date:"):
            ts = _parse_date(line.split(":", 1)[1].strip())
        elif line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
        elif not line.strip() and i + 1 < len(lines) and not subject and csum:
            subject = lines[i + 1].strip()
    return CommitInfo(checksum=csum, parent=parent, timestamp=ts, version=version, subject=subject,
                      content=content)


def parse_log(text: str) -> list[CommitInfo]:
    """Parse ``ostree log REF``: newest first."""
    chunks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("commit "):
            chunks.append([])
        if chunks:
            chunks[-1].append(line)
    return [parse_show("\n".join(c)) for c in chunks]


def _parse_date(text: str) -> int | None:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp())
    except ValueError:
        return None


def parse_metadata_value(text: str) -> str:
    """``ostree show --print-metadata-key`` prints a GVariant: strip the quotes of a plain string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")
    return text


@dataclass(frozen=True)
class Origin:
    refspec: str | None
    override_commit: str | None = None
    base_checksum: str | None = None
    layered: tuple[str, ...] = ()

    @property
    def remote(self) -> str | None:
        if self.refspec and ":" in self.refspec:
            return self.refspec.split(":", 1)[0]
        return None

    @property
    def ref(self) -> str | None:
        if self.refspec is None:
            return None
        return self.refspec.split(":", 1)[1] if ":" in self.refspec else self.refspec


def parse_keyfile(text: str) -> dict[tuple[str, str], str]:
    """A GLib key file (what ostree writes ``.origin`` files as): ``{(group, key): value}``.

    ``#`` lines are comments, ``[group]`` starts a group, ``key=value`` (spaces around ``=`` dropped);
    a later duplicate key wins, as in GLib. Raises :class:`FusionError` on any other line."""
    out: dict[tuple[str, str], str] = {}
    group = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep or group is None or not key.strip():
            raise FusionError(f"unreadable deployment origin: line {n}: {raw!r}")
        out[(group, key.strip())] = value.strip()
    return out


def parse_origin(text: str) -> Origin:
    """Parse a deployment's ``.origin`` keyfile (``[origin] refspec=``, Fusion's ``[fusion]`` group)."""
    kf = parse_keyfile(text)
    refspec = kf.get(("origin", "refspec"))
    override = kf.get(("origin", "override-commit")) or None
    base = kf.get(("fusion", "base-checksum")) or None
    layered = tuple(p for p in kf.get(("fusion", "layered-packages"), "").split(";") if p)
    return Origin(refspec=refspec, override_commit=override, base_checksum=base, layered=layered)


def render_origin(origin: Origin) -> str:
    lines = ["[origin]", f"refspec={origin.refspec or ''}"]
    if origin.override_commit:
        lines.append(f"override-commit={origin.override_commit}")
    if origin.base_checksum or origin.layered:
        lines.append("")
        lines.append("[fusion]")
        if origin.base_checksum:
            lines.append(f"base-checksum={origin.base_checksum}")
        if origin.layered:
            lines.append("layered-packages=" + ";".join(origin.layered) + ";")
    return "\n".join(lines) + "\n"


def _when(ts: int | None) -> str:
    if ts is None:
        return ""
    return " (" + datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + ")"


def render_status(deps: list[Deployment], *, booted_host: bool) -> str:
    """Text like ``rpm-ostree status``: ``●`` marks the booted deployment."""
    lines = ["State: idle"]
    if not booted_host:
        lines.append("Sysroot: not booted (the first deployment boots next)")
    if not deps:
        lines.append("Deployments: none")
        return "\n".join(lines) + "\n"
    lines.append("Deployments:")
    for d in deps:
        mark = "●" if d.booted else " "
        tags = [t for t, on in (("staged", d.staged), ("pending", d.pending), ("rollback", d.rollback),
                                ("default", d.default and not d.booted and not booted_host)) if on]
        suffix = f" ({', '.join(tags)})" if tags else ""
        lines.append(f"{mark} {d.origin or '(no origin)'}{suffix}")
        rows: list[tuple[str, str]] = []
        rows.append(("OS", d.osname))
        if d.version:
            rows.append(("Version", f"{d.version}{_when(d.timestamp)}"))
        if d.base_checksum:
            rows.append(("BaseCommit", d.base_checksum))
        rows.append(("Commit", d.checksum))
        if d.override_commit:
            rows.append(("Override", "deployed by version/checksum; `fusion host upgrade` returns to the latest"))
        if d.layered_packages:
            rows.append(("LayeredPackages", " ".join(d.layered_packages)))
        if d.staged:
            rows.append(("Staged", "yes"))
        if d.pinned:
            rows.append(("Pinned", "yes"))
        if d.unlocked != "none":
            rows.append(("Unlocked", d.unlocked))
        for k, v in rows:
            lines.append(f"{k:>25}: {v}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def parse_config_diff(text: str) -> list[tuple[str, str]]:
    """Parse ``ostree admin config-diff``: ``M    path`` lines into ``(letter, /etc/path)``, by path."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in ("A", "M", "D"):
            path = parts[1].strip()
            out.append((parts[0], path if path.startswith("/") else "/etc/" + path))
    return sorted(out, key=lambda change: change[1])
