"""Hostile FMUs (tests/hostile/hostile.c) through ``validibot validate``, as a hostile uploader would try them.

Each attack must end with the right status and a code naming what happened, in a small envelope, with
nothing outside the sandbox's scratch folder changed, no secret leaked and no process left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile_fmus import build_hostile
from tests.processes import processes_running

CLI = [sys.executable, "-m", "validibot_pipelines.cli"]
SECRETS = {"AWS_SECRET_ACCESS_KEY": "sekrit-aws-4711", "MODAL_TOKEN_SECRET": "sekrit-modal-4711",
           "DAGSTER_PG_PASSWORD": "sekrit-pg-4711"}
MAX_ENVELOPE = 256 * 1024


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its checksum (what an attack on the store would change)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def left_behind(marker: str) -> list[str]:
    """Live processes whose command line mentions ``marker`` (this test's own temporary folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:300])
    return found


def validate(fmu: Path, home: Path, *, timeout: float = 30, env: dict[str, str] | None = None,
             wall: float = 240) -> tuple[int, dict, float]:
    """Run ``validibot validate --json``; return its exit code, the printed envelope and the wall time.

    The worker's temporary folders live under ``home`` (TMPDIR), so every sandbox of this run names ``home``
    on its command line and :func:`left_behind` finds exactly this run's survivors.
    """
    start = time.monotonic()
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*CLI, "validate", str(fmu), "--json", "--timeout", str(timeout)],
                          env={**os.environ, "VALIDIBOT_HOME": str(home), "TMPDIR": str(home / "tmp"), **SECRETS,
                               **(env or {})},
                          capture_output=True, text=True, timeout=wall)
    assert proc.stdout, proc.stderr[-2000:]
    assert len(proc.stdout) < MAX_ENVELOPE, len(proc.stdout)
    return proc.returncode, json.loads(proc.stdout), time.monotonic() - start


def codes(envelope: dict) -> list[str]:
    return [m["code"] for m in envelope["messages"]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A VALIDIBOT_HOME with another model's verdict already stored (what an attack would rewrite)."""
    home = tmp_path / "home"
    victim = home / "store" / "runs" / "victim-run"
    victim.mkdir(parents=True)
    (victim / "output.json").write_text('{"status": "failed_validation"}')
    (home / "store" / "models" / "abc").mkdir(parents=True)
    (home / "store" / "models" / "abc" / "secret_model.fmu").write_bytes(b"someone else's upload")
    return home


# attack -> (exit code, status, code in the messages, extra environment)
CASES = {
    "memory": (1, "failed_validation", "FMU_MEMORY_LIMIT", {"VALIDIBOT_SANDBOX_MEMORY_BYTES": str(1024**3)}),
    "fork_bomb": (1, "failed_validation", "FMU_PROCESSES_LIMIT", {"VALIDIBOT_SANDBOX_MAX_PROCESSES": "64"}),
    "cpu_burn": (1, "failed_validation", "FMU_CPU_LIMIT", {"VALIDIBOT_SANDBOX_CPU_SECONDS": "3"}),
    "file_size": (1, "failed_validation", "FMU_FILE_SIZE_LIMIT",
                  {"VALIDIBOT_SANDBOX_MAX_FILE_BYTES": str(10 * 1024**2)}),
    "huge_stderr": (1, "failed_validation", "FMU_CRASHED", {}),
    "kill_parent": (1, "failed_validation", "FMU_CRASHED", {}),
    "forge": (1, "failed_validation", "FMU_RESULT_INVALID", {}),
}


@pytest.mark.parametrize("attack", sorted(CASES))
def test_hostile_fmu_ends_as_the_models_fault_with_a_code_naming_it(attack: str, home: Path, tmp_path: Path) -> None:
    rc, status, code, env = CASES[attack]
    fmu = build_hostile(attack, tmp_path / "fmus", target="/etc/hostname")
    before = snapshot(home / "store")
    got_rc, envelope, _ = validate(fmu, home, env=env, timeout=60)
    assert (got_rc, envelope["status"]) == (rc, status), envelope["messages"]
    assert code in codes(envelope), envelope["messages"]
    message = next(m["text"] for m in envelope["messages"] if m["code"] == code)
    assert fmu.name in message and len(message) <= 4096
    assert all(len(m["text"]) <= 4096 for m in envelope["messages"])
    after = snapshot(home / "store")
    assert {k: v for k, v in after.items() if k in before} == before  # nothing stored was changed
    assert left_behind(str(home)) == []


def test_secrets_in_the_environment_never_reach_the_model(home: Path, tmp_path: Path) -> None:
    fmu = build_hostile("env_secrets", tmp_path / "fmus")
    rc, envelope, _ = validate(fmu, home)
    assert rc == 0 and envelope["status"] == "success"
    log = envelope["outputs"]["fmu_log"]
    assert any("leak AWS_SECRET_ACCESS_KEY=(unset)" in line for line in log), log  # the model did look
    assert not any(secret in json.dumps(envelope) for secret in SECRETS.values())
    assert any("DAGSTER_HOME=(unset)" in line for line in log)


def test_a_model_cannot_rewrite_stored_verdicts_or_copy_uploads(home: Path, tmp_path: Path) -> None:
    store = home / "store"
    fmu = build_hostile("tamper", tmp_path / "fmus", target=str(home))
    before = snapshot(store)
    rc, envelope, _ = validate(fmu, home)
    assert rc == 0 and envelope["status"] == "success"  # it ran; it just could not see anything to attack
    assert (store / "runs" / "victim-run" / "output.json").read_text() == '{"status": "failed_validation"}'
    assert not list(home.rglob("pwned-by-hostile-fmu"))
    assert not list(home.rglob("stolen-*"))
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_daemon_holding_the_pipes_neither_stalls_the_run_nor_survives_it(home: Path, tmp_path: Path) -> None:
    fmu = build_hostile("orphan", tmp_path / "fmus")
    rc, envelope, seconds = validate(fmu, home, timeout=60)
    assert rc == 0 and envelope["status"] == "success", envelope["messages"]
    assert "FMU_TIMEOUT" not in codes(envelope)
    assert seconds < 60  # the daemon sleeps 313 s: waiting for its pipes would have run into the timeout
    assert processes_running("313.25") == [] and left_behind(str(home)) == []


def test_a_flood_of_log_lines_keeps_the_envelope_small(home: Path, tmp_path: Path) -> None:
    fmu = build_hostile("huge_log", tmp_path / "fmus")
    rc, envelope, _ = validate(fmu, home, timeout=120)
    assert rc == 0 and envelope["status"] == "success"
    log = envelope["outputs"]["fmu_log"]
    assert 0 < len(log) <= 201 and all(len(line) <= 1000 for line in log)


def test_a_700_byte_step_file_with_a_self_referencing_edge_hits_the_memory_limit(home: Path) -> None:
    """The part drove OpenCASCADE to 23 GB and the machine-wide OOM killer before the sandbox existed."""
    part = Path(__file__).parent / "hostile" / "self_referencing_edge.step"
    assert part.stat().st_size < 1000
    rc, envelope, _ = validate(part, home, env={"VALIDIBOT_SANDBOX_MEMORY_BYTES": str(1024**3)})
    assert (rc, envelope["status"]) == (1, "failed_validation"), envelope["messages"]
    message = next(m["text"] for m in envelope["messages"] if m["code"] == "MESH_MEMORY_LIMIT")
    assert part.name in message and "1 GiB" in message and "VALIDIBOT_SANDBOX_MEMORY_BYTES" in message
    assert left_behind(str(home)) == []
