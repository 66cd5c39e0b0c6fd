"""Hostile uploads at intake and in the demo: each fails naming the file, the problem and the fix — never a
traceback, a "check credentials" system error, or a silent pass.

Fixtures are built here: the sample FMUs compiled from the repository's C sources (``sample_fmus``) and
rewritten with ``zipfile``; the demo runs for real in a subprocess with its own VALIDIBOT_HOME.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from validibot_pipelines.demo import verdict
from validibot_pipelines.local_runner import RunOutcome
from validibot_pipelines.validators import REGISTERED
from validibot_pipelines.validators.fmi.intake import FmuCode, check_fmu


def _validibot(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _with_binary(src: Path, out: Path, content: bytes) -> tuple[Path, str]:
    """Copy an FMU, replacing its Linux shared library's bytes with ``content``; returns (path, member name)."""
    replaced = ""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith(("binaries/linux64/", "binaries/x86_64-linux/")) and \
                    info.filename.endswith(".so"):
                data, replaced = content, info.filename
            zout.writestr(info.filename, data)
    assert replaced, "the sample FMU has a Linux binary"
    return out, replaced


DLL = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200)  # what a Windows DLL renamed to .so starts with
MACHO = b"\xcf\xfa\xed\xfe" + bytes(200)
TEXT = b"#!/bin/sh\necho not a library\n"


def test_a_non_elf_linux_binary_fails_validate_naming_the_member(sample_fmus, tmp_path):  # noqa: ANN001
    fmu, member = _with_binary(sample_fmus["first_order_lag"], tmp_path / "renamed_dll.fmu", DLL)
    proc = _validibot("validate", str(fmu), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    (msg,) = [m for m in out["messages"] if m["code"] == FmuCode.BINARY_NOT_ELF]
    assert msg["text"].startswith("renamed_dll.fmu: ") and member in msg["text"]
    assert "Windows DLL" in msg["text"] and "re-export the FMU" in msg["text"] and len(msg["text"]) < 600
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("content", [MACHO, TEXT, b""], ids=["macho", "text", "empty"])
def test_every_non_elf_so_is_refused_and_a_real_one_accepted(sample_fmus, tmp_path, content):  # noqa: ANN001
    fmu, member = _with_binary(sample_fmus["first_order_lag"], tmp_path / "bad.fmu", content)
    report = check_fmu(fmu, "bad.fmu")
    assert not report.accepted
    (finding,) = [f for f in report.findings if f.code == FmuCode.BINARY_NOT_ELF]
    assert finding.location == member and member in finding.text
    assert check_fmu(sample_fmus["first_order_lag"], "good.fmu").accepted  # the compiled sample is ELF


def test_non_linux_platform_binaries_are_not_judged(sample_fmus, tmp_path):  # noqa: ANN001
    out = tmp_path / "multi.fmu"
    with zipfile.ZipFile(sample_fmus["first_order_lag"]) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr("binaries/win64/first_order_lag.dll", DLL)  # a DLL where a DLL belongs
        zout.writestr("binaries/darwin64/first_order_lag.dylib", MACHO)
    assert check_fmu(out, "multi.fmu").accepted


def test_a_250_character_name_fails_validate_with_the_fix_not_a_system_error(sample_fmus, tmp_path):  # noqa: ANN001
    name = "n" * 246 + ".fmu"
    model = tmp_path / name
    model.write_bytes(sample_fmus["first_order_lag"].read_bytes())
    proc = _validibot("validate", str(model), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    (msg,) = out["messages"]
    assert msg["code"] == "FILE_NAME_TOO_LONG" and "rename the file" in msg["text"] and "250 bytes" in msg["text"]
    assert msg["text"].startswith("nnnn") and len(msg["text"]) < 600
    assert "CONTROL_PLANE_ERROR" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_a_200_byte_name_still_validates(sample_fmus, tmp_path):  # noqa: ANN001
    model = tmp_path / ("k" * 196 + ".fmu")
    model.write_bytes(sample_fmus["first_order_lag"].read_bytes())
    proc = _validibot("validate", str(model), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout)["status"] == "success"


def _outcome(success: bool, passed: bool = True) -> RunOutcome:
    return RunOutcome(partition_key="0" * 64, source_uri="file:///l/m.fmu", run_id="r" * 36, success=success,
                      outputs={}, checks={"cel_assertions": (passed, "")})


def test_demo_verdict_is_non_zero_for_nothing_validated_or_any_failure(tmp_path, capsys):  # noqa: ANN001
    assert verdict([], [tmp_path / "a.fmu"], tmp_path) == 1
    assert "nothing was validated" in capsys.readouterr().out
    assert verdict([_outcome(True), _outcome(False)], [], tmp_path) == 1
    assert verdict([_outcome(True, passed=False)], [], tmp_path) == 1
    assert "failed" in capsys.readouterr().out
    assert verdict([_outcome(True)], [], tmp_path) == 0


def test_demo_with_stray_files_validates_the_samples_and_again_on_a_second_run(tmp_path):  # noqa: ANN001
    home = tmp_path / "home"
    landing = home / "landing"
    landing.mkdir(parents=True)
    for i in range(60):  # more stray files than one tick handles (50): they must not end the demo early
        (landing / f"notes{i:02}.txt").write_text("not a model\n")
    os.mkfifo(landing / "pipe.fmu")
    (landing / "link.idf").symlink_to("/etc/hostname")
    env = {"VALIDIBOT_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "VALIDIBOT_LANDING_SETTLE_SECONDS": "0.2"}
    first = _validibot("demo", cwd=tmp_path, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    dropped = int(re.search(r"dropped (\d+) sample model", first.stdout).group(1))  # one or more per validator
    assert dropped >= len(REGISTERED)
    assert f"validated {dropped} model(s)" in first.stdout and "all validations passed" in first.stdout
    assert "pipe.fmu: skipped" in first.stderr and "link.idf: skipped" in first.stderr
    _assert_partitions_name_models_and_report(home, dropped)

    again = _validibot("demo", cwd=tmp_path, env=env, timeout=600)  # identical samples: run again, not "nothing"
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"re-validated {dropped} unchanged sample(s)" in again.stdout
    assert f"validated {dropped} model(s)" in again.stdout
    assert "Traceback" not in again.stdout + again.stderr


def _assert_partitions_name_models_and_report(home, dropped: int) -> None:  # noqa: ANN001
    """The demo's instance as an analyst opens it: each partition key is its model's landing path, and the
    unpartitioned ``validation_report`` has one row per validated model."""
    from dagster import AssetKey, DagsterInstance

    from validibot_pipelines.orchestration.names import model_path
    from validibot_pipelines.validators.registry import validators

    with DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        keys = [k for v in validators() for k in instance.get_dynamic_partitions(v.partitions.name)]
        assert len(keys) == dropped
        for key in keys:
            assert (home / "landing" / model_path(key)).is_file(), key
        report = instance.get_latest_materialization_event(AssetKey("validation_report"))
        assert report is not None
        rows = report.asset_materialization.metadata["report"].records
        assert sorted(r.data["model"] for r in rows) == sorted(model_path(k) for k in keys)
