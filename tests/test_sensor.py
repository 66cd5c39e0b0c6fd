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
    # A spec landing in a later batch than its model re-announces that model with the same run key, which
    # Dagster deduplicates; so compare distinct run keys.
    distinct = {u.run_key: u for u in seen}.values()
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
