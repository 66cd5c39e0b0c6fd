"""A hostile landing zone: the upload sensor never stops, never follows a link, never opens a special file.

Every case drives the real ``upload_sensor`` through ``local_runner.tick`` on a real (SQLite) Dagster instance;
the bad entries are made here with the OS calls an author's tools would use (``ln -s``, ``mkfifo``, a socket, a
half-copied file). A tick that blocks on a FIFO would hang the test, so each tick runs under an alarm.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from validibot_pipelines.sensors.landing import scan

SECRET = "TOP-SECRET-FIRST-LINE do not quote me"


@contextmanager
def _deadline(seconds: int):  # noqa: ANN202
    def _expired(*_args: object) -> None:
        raise TimeoutError(f"the tick did not finish within {seconds} s (it blocked on a landing-zone entry)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _landing(pipeline) -> Path:  # noqa: ANN001
    path = Path(pipeline.landing_uri.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _bad_entries(landing: Path, outside: Path) -> dict[str, str]:
    """Every kind of entry a scan must skip, by name -> the word its log line must contain."""
    outside.write_text(SECRET + "\nsecond line\n")
    (landing / "escape.fmu").symlink_to(outside)  # a link to a file outside the landing zone
    (landing / "escape.fmu.validation.yaml").symlink_to(outside)
    (landing / "dangling.fmu").symlink_to(landing / "does-not-exist.fmu")
    (landing / "linked_dir").symlink_to(outside.parent, target_is_directory=True)
    os.mkfifo(landing / "pipe.fmu")
    folder = landing / "unzipped.fmu"
    folder.mkdir()
    (folder / "modelDescription.xml").write_text("<fmiModelDescription/>")
    kinds = {"escape.fmu": "symbolic link", "escape.fmu.validation.yaml": "symbolic link",
             "dangling.fmu": "symbolic link", "linked_dir": "symbolic link", "pipe.fmu": "FIFO",
             "unzipped.fmu": "folder"}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    try:  # AF_UNIX paths are limited to ~107 bytes: bind by a relative name
        os.chdir(landing)
        sock.bind("sock.stl")
        kinds["sock.stl"] = "socket"
    finally:
        os.chdir(cwd)
        sock.close()
    try:
        os.mknod(landing / "null.idf", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        kinds["null.idf"] = "character device"
    except (PermissionError, OSError):  # not root: no device node, the rest still runs
        pass
    return kinds


def test_every_bad_entry_is_skipped_and_the_good_fmu_is_validated(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    landing = _landing(pipeline)
    (tmp_path / "outside").mkdir()
    kinds = _bad_entries(landing, tmp_path / "outside" / "secret.txt")
    good = pipeline.drop(sample_fmus["first_order_lag"])

    with _deadline(120):
        outcomes = pipeline.tick()

    assert [o.source_uri for o in outcomes] == [good]
    (outcome,) = outcomes
    assert outcome.success and outcome.checks["intake_accepted"] == (True, "accepted")
    assert pipeline.partitions() == [outcome.partition_key]

    # The sensor's log names each skipped entry and why, and never quotes the file outside the landing zone.
    logs = [e.user_message for e in pipeline.instance.all_logs(outcome.run_id)]
    assert all(SECRET not in m for m in logs)
    result = scan(pipeline.landing_uri, None)
    assert [u.uri for u in result.uploads] == [good]
    for name, kind in kinds.items():
        lines = [m for m in result.skipped if f"/{name}:" in m]
        assert len(lines) == 1 and kind in lines[0], (name, result.skipped)
    assert all(SECRET not in m and len(m) < 500 for m in result.skipped)

    # A later tick neither raises nor hangs and does not re-run anything; new uploads still get through.
    with _deadline(60):
        assert pipeline.tick() == []
        again = scan(pipeline.landing_uri, result.cursor)
    assert again.skipped == [] and again.uploads == []  # each bad entry is reported once, not every tick
    second = pipeline.drop(sample_fmus["multi_output"])
    with _deadline(120):
        later = pipeline.tick()
    assert [o.source_uri for o in later] == [second] and later[0].success


def test_unreadable_name_and_vanished_entries_do_not_stop_the_scan(pipeline, sample_fmus):  # noqa: ANN001
    landing = _landing(pipeline)
    bad_name = os.fsencode(landing) + b"/caf\xe9.fmu"  # Latin-1 bytes: not a UTF-8 name
    with open(bad_name, "wb") as fh:
        fh.write(sample_fmus["multi_output"].read_bytes())
    good = pipeline.drop(sample_fmus["first_order_lag"])
    with _deadline(120):
        outcomes = pipeline.tick()
    assert [o.source_uri for o in outcomes] == [good]
    assert any("not valid UTF-8" in m for m in scan(pipeline.landing_uri, None).skipped)


@pytest.fixture
def settle(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("VALIDIBOT_LANDING_SETTLE_SECONDS", "1.5")
    return 1.5


def test_a_file_still_being_written_is_registered_only_once_complete(pipeline, sample_fmus, settle):  # noqa: ANN001
    data = sample_fmus["first_order_lag"].read_bytes()
    target = _landing(pipeline) / "growing.fmu"
    with open(target, "wb") as fh:  # an upload in progress: written in place, as cp/scp/curl do
        fh.write(data[: len(data) // 2])
        fh.flush()
        with _deadline(60):
            assert pipeline.tick() == []  # the half file is not a model of its own
        assert pipeline.partitions() == []
        fh.write(data[len(data) // 2:])
    with _deadline(120):
        (outcome,) = pipeline.tick()
    assert outcome.success and outcome.outputs["fmu_intake"]["file_name"] == "growing.fmu"
    assert pipeline.partitions() == [outcome.partition_key]  # one partition: the complete file's


def test_a_truncated_upload_is_judged_after_the_settle_time(pipeline, sample_fmus, settle):  # noqa: ANN001
    data = sample_fmus["first_order_lag"].read_bytes()
    (_landing(pipeline) / "cut.fmu").write_bytes(data[: len(data) // 2])
    with _deadline(60):
        assert pipeline.tick() == []
    time.sleep(settle + 0.2)  # the writer is gone: the file stays as it is
    with _deadline(120):
        (outcome,) = pipeline.tick()
    intake = outcome.outputs["fmu_intake"]
    assert intake["status"] == "failed_validation"
    assert any(f["code"] == "FMU_TRUNCATED" and f["text"].startswith("cut.fmu: ") for f in intake["findings"])


def test_settle_time_never_delays_a_complete_file(pipeline, sample_fmus, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_LANDING_SETTLE_SECONDS", "3600")
    pipeline.drop(sample_fmus["first_order_lag"])
    with _deadline(120):
        (outcome,) = pipeline.tick()  # it ends like a complete ZIP: no waiting
    assert outcome.success


def test_a_250_character_name_is_refused_at_intake_naming_the_fix(pipeline, sample_fmus):  # noqa: ANN001
    name = "m" * 246 + ".fmu"  # legal on Linux (255 bytes), but its sidecar/temp names would not be
    path = _landing(pipeline) / name
    path.write_bytes(sample_fmus["first_order_lag"].read_bytes())  # as `cp` would: the store's temp name is too long
    uri = path.as_uri()
    with _deadline(120):
        (outcome,) = pipeline.tick()
    assert outcome.source_uri == uri
    intake = outcome.outputs["fmu_intake"]
    assert intake["status"] == "failed_validation" and outcome.checks["intake_accepted"][0] is False
    (finding,) = [f for f in intake["findings"] if f["code"] == "FILE_NAME_TOO_LONG"]
    assert "250 bytes" in finding["text"] and "rename the file" in finding["text"] and len(finding["text"]) < 600
    assert finding["text"].startswith("mmmm") and finding["text"].split(":")[0].endswith(".fmu")
    assert "CONTROL_PLANE_ERROR" not in str(intake) and "credentials" not in str(intake)
