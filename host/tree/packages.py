"""Package lists of trees: encoding in commit metadata, parsing dpkg output, and diffs.

Pure functions only. A tree's package list is stored in its commit metadata under
:data:`PACKAGES_KEY` as ``name=version`` words separated by spaces (Debian names and versions never
contain spaces, '=' or quotes, so ``ostree show --print-metadata-key`` prints it back verbatim in
single quotes), and in the tree itself at :data:`INVENTORY_PATH` one ``name version`` per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PACKAGES_KEY = "fusion.packages"
LAYERED_KEY = "fusion.layered"
BASE_KEY = "fusion.base-checksum"
INVENTORY_PATH = "usr/share/fusion/packages.txt"

Packages = dict[str, str]


def encode(packages: Packages) -> str:
    return " ".join(f"{name}={packages[name]}" for name in sorted(packages))


def decode(text: str) -> Packages:
    """The inverse of :func:`encode`; also accepts the quoted form ``ostree show`` prints."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    out: Packages = {}
    for word in text.split():
        name, sep, version = word.partition("=")
        if sep and name:
            out[name] = version
    return out


def parse_dpkg_query(text: str) -> Packages:
    """Parse ``dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` output.

    Only installed packages (status ``ii``/``iU``...: second letter not ``n``) count; without a
    status column every line counts. (Second letter ``n``: not installed, ``c``: only config files left.)
    """
    out: Packages = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0]:
            continue
        if len(parts) >= 3 and parts[2].strip() and parts[2].strip()[1:2] in ("n", "c", ""):
            continue
        out[parts[0].split(":")[0]] = parts[1]
    return out


def parse_inventory(text: str) -> Packages:
    """The inverse of :func:`inventory_text` (``name version`` lines)."""
    out: Packages = {}
    for line in text.splitlines():
        name, _, version = line.strip().partition(" ")
        if name and version:
            out[name] = version
    return out


def inventory_text(packages: Packages) -> str:
    return "".join(f"{name} {packages[name]}\n" for name in sorted(packages))


@dataclass(frozen=True)
class PackageDiff:
    upgraded: list[tuple[str, str, str]] = field(default_factory=list)
    downgraded: list[tuple[str, str, str]] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.upgraded or self.downgraded or self.added or self.removed)

    def lines(self) -> list[str]:
        """rpm-ostree style: ``Upgraded:`` / ``Downgraded:`` / ``Added:`` / ``Removed:`` blocks."""
        out: list[str] = []
        if self.upgraded:
            out.append("Upgraded:")
            out += [f"  {n} {a} -> {b}" for n, a, b in self.upgraded]
        if self.downgraded:
            out.append("Downgraded:")
            out += [f"  {n} {a} -> {b}" for n, a, b in self.downgraded]
        if self.removed:
            out.append("Removed:")
            out += [f"  {n}-{v}" for n, v in self.removed]
        if self.added:
            out.append("Added:")
            out += [f"  {n}-{v}" for n, v in self.added]
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "upgraded": [{"name": n, "from": a, "to": b} for n, a, b in self.upgraded],
            "downgraded": [{"name": n, "from": a, "to": b} for n, a, b in self.downgraded],
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
        }


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or revision (lib/dpkg/version.c)."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_versions(a: str, b: str) -> int:
    """Debian version order: negative, zero or positive like dpkg --compare-versions."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return (int(epoch) if epoch.isdigit() else 0, upstream, revision)

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def diff(old: Packages, new: Packages) -> PackageDiff:
    upgraded: list[tuple[str, str, str]] = []
    downgraded: list[tuple[str, str, str]] = []
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        if a == b:
            continue
        newer = compare_versions(b, a) > 0
        (upgraded if newer else downgraded).append((name, a, b))
    added = [(n, new[n]) for n in sorted(set(new) - set(old))]
    removed = [(n, old[n]) for n in sorted(set(old) - set(new))]
    return PackageDiff(upgraded, downgraded, added, removed)
