"""Commit objects read straight from the repository, against what ``ostree show`` (2022.7) printed.

The two objects were recorded from a bare-user repository::

    ostree commit -b a --tree=dir=T -s "" --timestamp=2024-01-02T03:04:05Z               # FIRST
    ostree commit -b a --tree=dir=T -s "second é" --body "long body" \\
        --timestamp=2024-01-02T03:04:06Z --add-metadata-string=version=2.0 \\
        --add-metadata=n="uint64 7" --add-metadata=l="['x','y']" \\
        --add-metadata-string=fusion.packages="a=1 b=2:3-4" --add-metadata-string=empty=   # SECOND

FIRST is under 256 bytes (1-byte framing offsets), SECOND over (2-byte offsets).
"""

from __future__ import annotations

import pytest

from host.tree.commitobj import CommitFormatError, decode_commit, read_commit

FIRST_CSUM = "d2e9d82ad883fbaf0ad8c5296af687514a4c02714ee55144b55ae5cfccb3e8c7"
FIRST = bytes.fromhex(
    "6f73747265652e7265662d62696e64696e67000000000000610002006173131f00000000000000000000000065937d253547ba8e0e13cdc7794f3bad712e31b84c9a244e59f807a196fea301d8af5756446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488502221202020")
SECOND_CSUM = "8dff43f41468a8e1ebefdb7f9b2248f3faf86338fb9d2652ed8625b243bbbaae"
SECOND = bytes.fromhex(
    "76657273696f6e00322e300000730800667573696f6e2e7061636b6167657300613d3120623d323a332d340000731000656d70747900000000007306000000006e00000000000000070000000000000000740200000000006c00000000000000780079000204006173020000000000006f73747265652e7265662d62696e64696e67000000000000610002006173130f2f3c536a8fd2e9d82ad883fbaf0ad8c5296af687514a4c02714ee55144b55ae5cfccb3e8c77365636f6e6420c3a9006c6f6e6720626f647900000000000000000000000065937d263547ba8e0e13cdc7794f3bad712e31b84c9a244e59f807a196fea301d8af5756446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488f800c900bf00b500b5009500")
# `ostree show`: "ContentChecksum:  83e74c4a..." for both (the same tree)
CONTENT = "83e74c4a123ddaf22c0b6e3ef515dfd173a2287ee865edf875d9c640e064f892"


def test_a_commit_with_metadata_of_several_types():
    info = decode_commit(SECOND_CSUM, SECOND)
    assert info.checksum == SECOND_CSUM and info.parent == FIRST_CSUM
    assert info.timestamp == 1704164646  # Date:  2024-01-02 03:04:06 +0000
    assert info.version == "2.0" and info.subject == "second é" and info.content == CONTENT
    # string values only (the uint64 and the string array are skipped)
    assert info.metadata == {"version": "2.0", "fusion.packages": "a=1 b=2:3-4", "empty": ""}


def test_a_small_commit_without_parent_or_metadata():
    info = decode_commit(FIRST_CSUM, FIRST)
    assert info.parent is None and info.timestamp == 1704164645 and info.version is None
    assert info.subject == "" and info.metadata == {} and info.content == CONTENT
    assert decode_commit(FIRST_CSUM, FIRST, content=False).content is None


def test_read_from_a_repository_layout(tmp_path):
    obj = tmp_path / "objects" / SECOND_CSUM[:2] / f"{SECOND_CSUM[2:]}.commit"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(SECOND)
    assert read_commit(tmp_path, SECOND_CSUM).version == "2.0"
    assert read_commit(tmp_path, FIRST_CSUM) is None  # not there: the caller asks ostree
    assert read_commit(tmp_path, "fusion/test/x86_64/host") is None  # a ref, not a checksum
    obj.write_bytes(SECOND[:-40])
    with pytest.raises(CommitFormatError, match="commit 8dff43f41468 in .*out of bounds") as e:
        read_commit(tmp_path, SECOND_CSUM)
    assert "ostree fsck" in (e.value.hint or "")


@pytest.mark.parametrize("cut", [0, 1, 7, 50, len(SECOND) // 2, len(SECOND) - 1])
def test_truncated_objects_are_errors_not_garbage(cut):
    with pytest.raises(CommitFormatError):
        decode_commit(SECOND_CSUM, SECOND[:cut])
