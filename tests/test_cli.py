"""``validibot validate``: in-process, prints the envelope or a summary, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _validibot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_success_json(sample_fmus, sample_specs, tmp_path):  # noqa: ANN001
    proc = _validibot("validate", str(sample_fmus["first_order_lag"]), "--spec",
                      str(sample_specs / "first_order_lag.validation.yaml"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "success"
    assert abs(out["outputs"]["output_values"]["y"] - 6 * (1 - 2.718281828459045 ** -6)) < 1e-9
    assert [a["passed"] for a in out["outputs"]["assertions"]] == [True, True]
    assert (tmp_path / ".validibot" / "store").is_dir()  # results went to the local default store
    # No plot is drawn for the command line (it shows none): only the Dagster assets ask the worker for one.
    assert out["outputs"]["plot_uri"] is None and not list((tmp_path / ".validibot").rglob("plot.png"))


def test_failed_assertion_exits_1_with_summary(sample_fmus, tmp_path):  # noqa: ANN001
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs: {u: 1.0}\nassertions:\n  - name: too_high\n    expr: 'o.y > 10'\n"
                    "    message: y should exceed 10\n")
    proc = _validibot("validate", str(sample_fmus["first_order_lag"]), "--spec", str(spec), cwd=tmp_path)
    assert proc.returncode == 1
    assert "failed_validation" in proc.stdout and "[FAIL] too_high" in proc.stdout
    assert "y should exceed 10" in proc.stdout


def test_bad_fmu_exits_1_and_names_the_problem(tmp_path):  # noqa: ANN001
    bad = tmp_path / "broken.fmu"
    bad.write_bytes(b"not a zip")
    proc = _validibot("validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "FMU_NOT_ZIP" in proc.stdout and "broken.fmu" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_malformed_spec_exits_1(sample_fmus, tmp_path):  # noqa: ANN001
    spec = tmp_path / "spec.yaml"
    spec.write_text("simulation: {stop_time: [\n")
    proc = _validibot("validate", str(sample_fmus["first_order_lag"]), "--spec", str(spec), "--json", cwd=tmp_path)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["messages"][0]["code"] == "SPEC_INVALID" and "spec.yaml" in out["messages"][0]["text"]


@pytest.mark.parametrize("args", [["validate", "missing.fmu"], ["validate"], ["nonsense"]])
def test_bad_arguments_exit_2(args, tmp_path):  # noqa: ANN001
    proc = _validibot(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_unsupported_file_type_exits_2(tmp_path):  # noqa: ANN001
    (tmp_path / "model.xyz").write_text("x")
    proc = _validibot("validate", str(tmp_path / "model.xyz"), cwd=tmp_path)
    assert proc.returncode == 2 and "no validator handles" in proc.stderr


def test_timeout_is_failed_validation(sample_fmus, tmp_path):  # noqa: ANN001
    proc = _validibot("validate", str(sample_fmus["hang"]), "--timeout", "2", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["messages"][-1]["code"] == "FMU_TIMEOUT"


def test_unreachable_store_is_failed_runtime_exit_2_without_traceback(sample_fmus, tmp_path):  # noqa: ANN001
    """The system's fault (here: an S3 endpoint nobody listens on) is exit code 2 with a message, not a crash."""
    import os

    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate",
                           str(sample_fmus["first_order_lag"]), "--store", "s3://nobucket/x", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_runtime"
    (msg,) = out["messages"]
    assert msg["code"] == "CONTROL_PLANE_ERROR" and "first_order_lag.fmu" in msg["text"]
    assert "s3://nobucket/x" in msg["text"]


def test_validate_a_folder_and_files_worst_exit_code_one_json_line_each(sample_fmus, tmp_path):  # noqa: ANN001
    """What a model author's CI runs: several models (a folder walked, plus a file), each with its sidecar spec."""
    import shutil

    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    shutil.copyfile(sample_fmus["first_order_lag"], models / "good.fmu")
    (models / "good.fmu.validation.yaml").write_text("assertions:\n  - name: settles\n    expr: o.y > 0.5\n")
    shutil.copyfile(sample_fmus["first_order_lag"], models / "sub" / "strict.fmu")
    (models / "sub" / "strict.fmu.validation.yaml").write_text("assertions:\n  - name: too_high\n    expr: o.y > 10\n")
    (models / "notes.txt").write_text("not a model")
    (models / ".hidden.fmu").write_text("ignored")
    extra = tmp_path / "multi.fmu"
    shutil.copyfile(sample_fmus["multi_output"], extra)

    proc = _validibot("validate", str(models), str(extra), "--json", cwd=tmp_path)
    envelopes = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["outputs"]["file_name"] for e in envelopes] == ["good.fmu", "strict.fmu", "multi.fmu"]
    assert [e["status"] for e in envelopes] == ["success", "failed_validation", "success"]
    assert [a["name"] for a in envelopes[1]["outputs"]["assertions"]] == ["too_high"]  # its own sidecar spec
    assert proc.returncode == 1  # the worst status: one model failed validation

    only_good = _validibot("validate", str(models / "good.fmu"), str(extra), cwd=tmp_path)
    assert only_good.returncode == 0 and "good.fmu: success" in only_good.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = _validibot("validate", str(empty), cwd=tmp_path)
    assert nothing.returncode == 2 and "no model files in this folder" in nothing.stderr


def test_a_reader_that_leaves_early_gets_a_quiet_exit_2_and_no_worker_is_left(sample_fmus, tmp_path):  # noqa: ANN001
    """``validibot validate a.fmu b.fmu | head``-style: the output pipe closes before the first envelope; the command
    stops without a traceback, exits 2 (not everything was reported) and its worker session is gone."""
    import shutil
    import time

    for name in ("a", "b"):
        shutil.copyfile(sample_fmus["first_order_lag"], tmp_path / f"{name}.fmu")
    proc = subprocess.Popen([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(tmp_path / "a.fmu"),
                             str(tmp_path / "b.fmu"), "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything was written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _workers_of(tmp_path):
        time.sleep(0.1)
    assert not _workers_of(tmp_path)


def _workers_of(cwd: Path) -> list[int]:
    """Worker processes (``python -m validibot_pipelines.runtime``) running in ``cwd``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"validibot_pipelines.runtime\x00" in (proc / "cmdline").read_bytes() + b"\x00" \
                    and (proc / "cwd").resolve() == cwd.resolve():
                found.append(int(proc.name))
        except OSError:
            continue
    return found
