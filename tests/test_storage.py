"""The URI-addressed object store, run once per scheme against a temp folder, gcp-storage-emulator and moto."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from validibot_pipelines.storage import ObjectInfo, get_store, join_uri

MIB = 1024 * 1024


def _forbid_reads(store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every content-reading path of ``store`` fail, so a passing call provably read metadata only."""

    def boom(*args, **kwargs):
        raise AssertionError("list() must not read object contents")

    for name in ("open_read", "read_bytes", "download_file", "sha256_and_size"):
        monkeypatch.setattr(store, name, boom)


def test_write_read_round_trip(store_root: str) -> None:
    store = get_store(store_root)
    uri = join_uri(store_root, "round/trip.bin")
    store.write_bytes(uri, b"hello \x00 world")
    assert store.read_bytes(uri) == b"hello \x00 world"

    store.write_bytes(uri, b"replaced")  # overwrite in place
    assert store.read_bytes(uri) == b"replaced"

    empty = join_uri(store_root, "round/empty.bin")
    store.write_bytes(empty, b"")
    assert store.read_bytes(empty) == b""


def test_upload_download_and_sha256_of_large_file(store_root: str, tmp_path: Path) -> None:
    store = get_store(store_root)
    data = os.urandom(3 * MIB)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    uri = join_uri(store_root, "big/model.fmu")

    store.upload_file(src, uri, content_type="application/octet-stream")
    dst = tmp_path / "out" / "nested" / "download.bin"  # parent folders are created
    store.download_file(uri, dst)

    assert dst.read_bytes() == data
    assert store.sha256_and_size(uri) == (hashlib.sha256(data).hexdigest(), len(data))


def test_exists(store_root: str) -> None:
    store = get_store(store_root)
    uri = join_uri(store_root, "here/file.txt")
    assert not store.exists(uri)
    store.write_bytes(uri, b"x")
    assert store.exists(uri)
    assert not store.exists(join_uri(store_root, "here/other.txt"))


def test_missing_object_raises_file_not_found(store_root: str, tmp_path: Path) -> None:
    store = get_store(store_root)
    missing = join_uri(store_root, "nope/missing.bin")
    with pytest.raises(FileNotFoundError):
        store.open_read(missing)
    with pytest.raises(FileNotFoundError):
        store.read_bytes(missing)

    target = tmp_path / "never.bin"
    with pytest.raises(FileNotFoundError):
        store.download_file(missing, target)
    assert not target.exists()  # no empty or partial file left behind


def test_list_is_recursive_metadata_only_and_prefix_exact(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = get_store(store_root)
    objects = {
        "a/x.txt": b"12345",
        "a/sub/deep/y.bin": b"1234567",
        "ab/z.txt": b"sibling prefix, must not be listed under a/",
        "a.txt": b"sibling name, must not be listed under a/",
    }
    for key, data in objects.items():
        store.write_bytes(join_uri(store_root, key), data)

    _forbid_reads(store, monkeypatch)
    before_ns = time.time_ns()

    for prefix in ("a", "a/"):
        listed = sorted(store.list(join_uri(store_root, prefix)), key=lambda info: info.uri)
        assert all(isinstance(info, ObjectInfo) for info in listed)
        expected = [join_uri(store_root, "a/sub/deep/y.bin"), join_uri(store_root, "a/x.txt")]
        assert [info.uri for info in listed] == expected
        assert [info.size for info in listed] == [7, 5]
        for info in listed:
            assert 0 < info.updated_ns
            assert abs(info.updated_ns - before_ns) < 3600 * 10**9  # plausible wall-clock ns, not s or ms

    assert list(store.list(join_uri(store_root, "missing"))) == []
    assert {info.uri for info in store.list(store_root)} == {join_uri(store_root, key) for key in objects}


def test_delete(store_root: str) -> None:
    store = get_store(store_root)
    uri = join_uri(store_root, "gone/soon.txt")
    store.write_bytes(uri, b"bye")
    store.delete(uri)
    assert not store.exists(uri)
    assert list(store.list(join_uri(store_root, "gone"))) == []
    store.delete(uri)  # deleting a missing object is a no-op


def test_copy_to_across_schemes(local_root: str, gcs_bucket: str, s3_bucket: str) -> None:
    data = os.urandom(MIB + 123)
    local_uri = join_uri(local_root, "models/m.fmu")
    gs_uri = join_uri(gcs_bucket, "canonical/m.fmu")
    s3_uri = join_uri(s3_bucket, "bundles/m.fmu")
    get_store(local_uri).write_bytes(local_uri, data)

    get_store(local_uri).copy_to(local_uri, gs_uri, get_store(gs_uri))
    get_store(gs_uri).copy_to(gs_uri, s3_uri, get_store(s3_uri))

    assert get_store(gs_uri).read_bytes(gs_uri) == data
    assert get_store(s3_uri).read_bytes(s3_uri) == data
    assert get_store(s3_uri).sha256_and_size(s3_uri) == (hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize("uri", ["ftp://x", "/abs/path/model.fmu", "relative/model.fmu"])
def test_get_store_rejects_unsupported_uris(uri: str) -> None:
    with pytest.raises(ValueError, match=re.escape(uri)):
        get_store(uri)
