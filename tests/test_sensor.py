"""The landing-zone scan behind the upload sensor: cursor, bounded batches, sidecar specs, gs:// and s3://."""

from __future__ import annotations

import hashlib

import pytest

from validibot_pipelines.sensors.landing import scan
from validibot_pipelines.storage import get_store, join_uri


@pytest.mark.parametrize("root", ["local_root", "gcs_bucket", "s3_bucket"])
def test_bounded_batches_and_cursor(root, request):  # noqa: ANN001
    landing = join_uri(request.getfixturevalue(root), "landing")
    store = get_store(landing)
    blobs = {f"m{i}.fmu": f"model {i}".encode() for i in range(5)}
    for name, data in blobs.items():
        store.write_bytes(join_uri(landing, name), data)
    store.write_bytes(join_uri(landing, "m0.fmu.validation.yaml"), b"assertions: []\n")
    store.write_bytes(join_uri(landing, "readme.txt"), b"not a model")

    seen, cursor, sizes = [], None, []
    for _ in range(5):
        result = scan(landing, cursor, max_new=3)
        sizes.append(len(result.uploads))
        seen.extend(result.uploads)
        cursor = result.cursor
        if not result.remaining:
            break
    # A spec landing in a later batch than its model re-announces that model (a new version: model + spec);
    # so compare distinct models.
    distinct = {u.uri: u for u in seen}.values()
    assert sorted(u.uri.rsplit("/", 1)[-1] for u in distinct) == sorted(blobs)
    assert {u.sha256 for u in distinct} == {hashlib.sha256(d).hexdigest() for d in blobs.values()}
    assert max(sizes) <= 3  # never more than max_new objects read per tick
    with_spec = [u for u in distinct if u.uri.endswith("m0.fmu")][0]
    assert with_spec.spec_uri and with_spec.spec_uri.endswith("m0.fmu.validation.yaml")
    assert scan(landing, cursor).uploads == []  # nothing new: nothing read


def test_scan_reads_only_new_objects(local_root, monkeypatch):  # noqa: ANN001
    landing = join_uri(local_root, "landing")
    store = get_store(landing)
    for i in range(20):
        store.write_bytes(join_uri(landing, f"old{i}.fmu"), b"x%d" % i)
    cursor = scan(landing, None, max_new=100).cursor
    store.write_bytes(join_uri(landing, "new.fmu"), b"new")
    reads = []
    original = type(store).open_read
    monkeypatch.setattr(type(store), "open_read", lambda self, uri: reads.append(uri) or original(self, uri))
    result = scan(landing, cursor)
    assert [u.uri.rsplit("/", 1)[-1] for u in result.uploads] == ["new.fmu"]
    assert all(r.endswith("new.fmu") for r in reads)  # the 20 old objects were listed, never read


def test_new_spec_alone_revalidates_its_model(local_root):  # noqa: ANN001
    landing = join_uri(local_root, "landing")
    store = get_store(landing)
    store.write_bytes(join_uri(landing, "a.fmu"), b"a")
    cursor = scan(landing, None).cursor
    store.write_bytes(join_uri(landing, "a.fmu.validation.yaml"), b"assertions: []\n")
    (upload,) = scan(landing, cursor).uploads
    assert upload.uri.endswith("a.fmu") and upload.spec_sha256


def test_file_moved_in_with_an_old_mtime_is_still_seen(local_root, tmp_path):  # noqa: ANN001
    """mv / cp -p / rsync -a / tar x keep an old mtime: the scan must not lose such an upload."""
    import os
    import shutil

    landing = join_uri(local_root, "landing")
    store = get_store(landing)
    store.write_bytes(join_uri(landing, "first.fmu"), b"first")
    cursor = scan(landing, None).cursor
    outside = tmp_path / "old.fmu"
    outside.write_bytes(b"an old model")
    os.utime(outside, ns=(1_000_000_000, 1_000_000_000))  # 1970: far below the cursor's mark and window
    shutil.move(str(outside), landing.removeprefix("file://") + "/old.fmu")
    (upload,) = scan(landing, cursor).uploads
    assert upload.uri.endswith("old.fmu")


def test_late_object_below_the_mark_is_picked_up_within_the_lookback_window(monkeypatch):  # noqa: ANN001
    """An S3 multipart upload is stamped when it started: it can appear below the mark after newer objects."""
    from validibot_pipelines.sensors.landing import Mark
    from validibot_pipelines.storage.base import ObjectInfo

    monkeypatch.setenv("VALIDIBOT_LANDING_LOOKBACK_SECONDS", "60")
    s = 1_000_000_000
    small = ObjectInfo("s3://b/l/small.fmu", 10, 1000 * s)
    mark = Mark.loads(Mark(-1, "").advance([small]).dumps())  # survives the cursor round trip
    assert mark.handled(small.uri, small.updated_ns)
    late = ObjectInfo("s3://b/l/big.fmu", 10**9, 990 * s)  # started 10 s before `small`, finished after it
    assert not mark.handled(late.uri, late.updated_ns)
    mark = mark.advance([late])
    assert mark.handled(late.uri, late.updated_ns) and (mark.updated_ns, mark.uri) == (1000 * s, small.uri)
    ancient = ObjectInfo("s3://b/l/ancient.fmu", 1, 100 * s)  # older than the window: handled long ago
    assert mark.handled(ancient.uri, ancient.updated_ns)
    later = mark.advance([ObjectInfo("s3://b/l/new.fmu", 1, 2000 * s)])
    assert later.recent == {"s3://b/l/new.fmu": 2000 * s}  # the window's memory stays bounded


def test_bytes_hashed_per_tick_are_bounded(local_root):  # noqa: ANN001
    landing = join_uri(local_root, "landing")
    store = get_store(landing)
    for i in range(4):
        store.write_bytes(join_uri(landing, f"m{i}.fmu"), bytes(1000))
    cursor, per_tick = None, []
    while True:
        result = scan(landing, cursor, max_bytes=2500)
        per_tick.append(len(result.uploads))
        cursor = result.cursor
        if not result.remaining:
            break
    assert per_tick == [2, 2]
    assert len(scan(landing, None, max_bytes=10).uploads) == 1  # always at least one object per tick
