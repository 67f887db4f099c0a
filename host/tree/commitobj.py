"""Read OSTree commit objects straight from a repository: no ``ostree show`` process.

A commit is stored, in every repository mode, as the serialized GVariant of type
``(a{sv}aya(say)sstayay)`` at ``objects/XX/YYYY….commit`` (metadata, parent, related objects,
subject, body, timestamp in big-endian, root dirtree checksum, root dirmeta checksum). This module
decodes that format (the GVariant specification's "normal form": little-endian framing offsets
whose width depends on the container's size) for the fields Fusion reads: the timestamp, the
parent, the subject, the ``ContentChecksum`` ``ostree show`` prints, and the metadata's string
values (``version``, ``fusion.packages`` ...). Other metadata value types are skipped.

Side effects: :func:`read_commit` reads one file. Decoding is pure; malformed data raises
:class:`CommitFormatError`.
"""

from __future__ import annotations

from pathlib import Path

from host.tree.status import CommitInfo
from specs.errors import FusionError

# (alignment, fixed size or None) of the members of a commit: a{sv} ay a(say) s s t ay ay
_COMMIT = ((8, None), (1, None), (1, None), (1, None), (1, None), (8, 8), (1, None), (1, None))
_DICT_ENTRY_SV = ((1, None), (8, None))


class CommitFormatError(FusionError):
    """A commit object is not a well-formed serialized commit GVariant."""


def _is_checksum(rev: str) -> bool:
    return len(rev) == 64 and all(c in "0123456789abcdef" for c in rev)


def commit_path(repo: Path, checksum: str) -> Path:
    return Path(repo) / "objects" / checksum[:2] / f"{checksum[2:]}.commit"


def read_commit(repo: Path, rev: str, *, content: bool = True) -> CommitInfo | None:
    """The commit ``rev`` (a full checksum) of ``repo``; None when ``rev`` is not a checksum or the
    object is not there (then ask ``ostree``, which also resolves refs). ``content=False`` skips the
    ContentChecksum (it loads hashlib: a few milliseconds that ``fusion host`` start-up avoids)."""
    if not _is_checksum(rev):
        return None
    try:
        data = commit_path(repo, rev).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return decode_commit(rev, data, content=content)
    except CommitFormatError as e:
        raise CommitFormatError(f"commit {rev[:12]} in {repo}: {e}",
                                hint="the repository is corrupt: run `ostree fsck` on it") from None


def decode_commit(checksum: str, data: bytes, *, content: bool = True) -> CommitInfo:
    """Decode a serialized commit (the bytes of a ``.commit`` object)."""
    meta, parent, _related, subject, _body, ts, contents, dirmeta = _tuple(data, _COMMIT)
    metadata: dict[str, str] = {}
    for entry in _variable_array(meta, 8):
        key, value = _tuple(entry, _DICT_ENTRY_SV)
        text = _variant_str(value)
        if text is not None:
            metadata[_str(key)] = text
    content_checksum = None
    if content and len(contents) == 32 and len(dirmeta) == 32:
        import hashlib  # ostree_commit_get_content_checksum(): sha256 of the two root checksums

        content_checksum = hashlib.sha256(contents + dirmeta).hexdigest()
    return CommitInfo(
        checksum=checksum,
        parent=parent.hex() if len(parent) == 32 else None,
        timestamp=int.from_bytes(ts, "big"),
        version=metadata.get("version"),
        subject=_str(subject),
        content=content_checksum,
        metadata=metadata,
    )


# --- GVariant normal form ------------------------------------------------------------------------

def _offset_size(container_size: int) -> int:
    if container_size < 0x100:
        return 1
    if container_size < 0x10000:
        return 2
    return 4 if container_size < 0x100000000 else 8


def _align(pos: int, alignment: int) -> int:
    return (pos + alignment - 1) & -alignment


def _offset(buf: bytes, pos: int, size: int) -> int:
    return int.from_bytes(buf[pos:pos + size], "little")


def _tuple(buf: bytes, members: tuple[tuple[int, int | None], ...]) -> list[bytes]:
    """Split a tuple whose last member has a variable size into its members' bytes."""
    osize = _offset_size(len(buf))
    frame = len(buf)  # framing offsets are read from the end, first member's last
    pos = 0
    out = []
    for i, (alignment, fixed) in enumerate(members):
        start = _align(pos, alignment)
        if fixed is not None:
            end = start + fixed
        elif i == len(members) - 1:
            end = frame
        else:
            frame -= osize
            end = _offset(buf, frame, osize)
        if not start <= end <= frame:
            raise CommitFormatError(f"member {i} of a tuple is out of bounds")
        out.append(buf[start:end])
        pos = end
    return out


def _variable_array(buf: bytes, alignment: int) -> list[bytes]:
    """The elements of an array of variable-size elements (each ends at an offset of the table)."""
    if not buf:
        return []
    osize = _offset_size(len(buf))
    table = _offset(buf, len(buf) - osize, osize)
    if not 0 <= table <= len(buf) - osize or (len(buf) - table) % osize:
        raise CommitFormatError("bad array framing")
    out = []
    pos = 0
    for k in range(table, len(buf), osize):
        start, end = _align(pos, alignment), _offset(buf, k, osize)
        if not start <= end <= table:
            raise CommitFormatError("array element out of bounds")
        out.append(buf[start:end])
        pos = end
    return out


def _str(buf: bytes) -> str:
    if not buf.endswith(b"\0"):
        raise CommitFormatError("string without its terminating NUL")
    return buf[:-1].decode("utf-8", errors="replace")


def _variant_str(buf: bytes) -> str | None:
    """The value of a variant when it holds a string (``s``), else None."""
    sep = buf.rfind(b"\0")
    if sep < 0:
        raise CommitFormatError("variant without a type")
    if buf[sep + 1:] != b"s":
        return None
    return _str(buf[:sep])
