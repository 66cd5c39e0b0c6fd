"""A batch of models in one worker launch: each model gets what a launch of its own gives it, and fails alone.

Through ``validibot validate`` with several files (what a model author puts in CI) and the worker's batch
entry point directly; the Dagster paths (backfill batches, grouped sensor runs) are in test_grouped_runs.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.hostile_fmus import build_hostile
from validibot_pipelines.validators.fmi.samples.build import build_fmu

CLI = [sys.executable, "-m", "validibot_pipelines.cli"]
SPEC = "simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       "  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def validate(paths: list[Path], home: Path, env: dict[str, str] | None = None,
             timeout: float = 20) -> tuple[int, list[dict]]:
    proc = subprocess.run([*CLI, "validate", *map(str, paths), "--json", "--timeout", str(timeout)],
                          env={**os.environ, "VALIDIBOT_HOME": str(home), **(env or {})},
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def codes(envelope: dict) -> list[str]:
    return [m["code"] for m in envelope["messages"]]


def comparable(envelope: dict) -> dict:
    """What a model's verdict is, without what names its run (ids, bundles, timings)."""
    outputs = {k: v for k, v in envelope["outputs"].items() if k not in ("timeseries_uri", "execution_seconds")}
    outputs.get("probe", {}).pop("execution_seconds", None)
    return {"status": envelope["status"], "outputs": outputs,
            "messages": [(m["severity"], m["code"]) for m in envelope["messages"]]}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    for variant in ("a", "b", "c"):
        fmu = build_fmu("first_order_lag", folder, variant=variant)
        fmu.with_name(fmu.name + ".validation.yaml").write_text(SPEC)
    return folder


def batches(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "store" / "batches").glob("*.json"))]


def test_a_folder_validates_as_one_batch_with_each_model_judged_as_alone(models: Path, tmp_path: Path) -> None:
    rc, together = validate([models], tmp_path / "home")
    assert rc == 0 and [e["status"] for e in together] == ["success"] * 3
    # Two worker launches for three models: every probe in one, every simulation in the other.
    manifests = batches(tmp_path / "home")
    assert sorted(len(m["inputs"]) for m in manifests) == [3, 3]
    assert {u.rsplit("/", 2)[-2].split("-")[1] for m in manifests for u in m["inputs"]} == {"probe", "simulation"}
    alone = [validate([fmu], tmp_path / f"home-{fmu.stem}")[1][0] for fmu in sorted(models.glob("*.fmu"))]
    assert [comparable(e) for e in together] == [comparable(e) for e in alone]
    assert all(e["outputs"]["assertions"][0]["passed"] for e in together)


def test_crashing_hanging_and_memory_hungry_models_fail_alone_in_a_batch(models: Path, tmp_path: Path) -> None:
    for attack in ("kill_parent", "cpu_burn", "memory", "orphan"):
        build_hostile(attack, models)
    env = {"VALIDIBOT_SANDBOX_MEMORY_BYTES": str(1024**3), "VALIDIBOT_SANDBOX_CPU_SECONDS": "3"}
    rc, out = validate([models], tmp_path / "home", env=env, timeout=30)
    by_name = {e["outputs"]["file_name"]: e for e in out}
    assert rc == 1
    for variant in ("a", "b", "c"):
        good = by_name[f"first_order_lag-{variant}.fmu"]
        assert good["status"] == "success", good["messages"]
        assert 5.98 < good["outputs"]["output_values"]["y"] < 6.0
    expected = {"kill_parent": "FMU_CRASHED", "cpu_burn": "FMU_CPU_LIMIT", "memory": "FMU_MEMORY_LIMIT"}
    for attack, code in expected.items():
        bad = by_name[f"hostile_{attack}.fmu"]
        assert bad["status"] == "failed_validation" and code in codes(bad), (attack, bad["messages"])
    assert by_name["hostile_orphan.fmu"]["status"] == "success"  # its daemon is killed, the result is its own


def test_one_worker_process_runs_a_manifest_and_a_broken_envelope_is_reported_alone(tmp_path: Path) -> None:
    from validibot_pipelines.runtime.batch import shard, write_manifest

    store = tmp_path / "store"
    inputs = [(store / "runs" / f"r{i}" / "input.json").as_uri() for i in range(5)]
    manifest = write_manifest(inputs, "b1")
    assert manifest == (store / "batches" / "b1.json").as_uri()
    assert shard(inputs, {"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "2"}) == [inputs[1], inputs[3]]
    assert shard(inputs, {}) == inputs
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.runtime"], capture_output=True, text=True,
                          env={**os.environ, "VALIDIBOT_BATCH_URI": manifest}, timeout=120)
    assert proc.returncode == 3  # none of the five envelopes exists: each is reported, the worker says so
    assert proc.stderr.count("does not exist") == 5 and "0 of 5 envelope(s) answered" in proc.stderr


def test_an_interrupted_batch_replays_its_finished_models_and_runs_only_the_rest(tmp_path: Path) -> None:
    """The worker is killed after two of four simulations; the next run replays those two, launches two."""
    from validibot_pipelines.orchestration.batching import together
    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
    from validibot_pipelines.validators.fmi import launch as fmi

    store = (tmp_path / "store").as_uri()
    folder = tmp_path / "models"
    records = []
    for i in range(4):
        fmu = build_fmu("first_order_lag", folder, variant=f"cut{i}")
        fmu.with_name(fmu.name + ".validation.yaml").write_text(SPEC)
        records.append(intake(fmu.as_uri(), store_uri=store, model_name=f"cut/{fmu.name}"))
    outputs = tmp_path / "store" / "runs"

    def kill_after_two() -> None:
        while len(list(outputs.glob("*-simulation-first-*/output.json"))) < 2:
            time.sleep(0.01)
        for pid in worker_pids(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)

    watcher = threading.Thread(target=kill_after_two, daemon=True)
    env = {"VALIDIBOT_WORKER_LANES": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        watcher.start()
        first = together(records, lambda r, b: fmi.simulate(r, store_uri=store, backend=b, attempt="first"),
                         LocalSubprocessBackend())
        watcher.join(timeout=60)
        statuses = [out.status.value for out, _ in first]
        assert sorted(statuses) == ["failed_runtime", "failed_runtime", "success", "success"], statuses
        second = together(records, lambda r, b: fmi.simulate(r, store_uri=store, backend=b, attempt="second"),
                          LocalSubprocessBackend())
    assert [out.status.value for out, _ in second] == ["success"] * 4
    replayed = [rec.backend for _, rec in second]
    assert sorted(replayed) == ["local", "local", "replay", "replay"]
    for (out1, _), (out2, rec2) in zip(first, second, strict=True):
        if out1.status.value == "success":  # the finished ones come back as they were, not recomputed
            assert rec2.backend == "replay" and out2.outputs == out1.outputs


def worker_pids(marker: str) -> list[int]:
    """This test's batch worker processes (their environment names a manifest under ``marker``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if f"VALIDIBOT_BATCH_URI=file://{marker}".encode() in (proc / "environ").read_bytes() and \
                    b"validibot_pipelines.runtime" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_lanes_follow_the_cpus_and_container_mode_runs_one_model_at_a_time() -> None:
    from validibot_pipelines.runtime.batch import lanes

    assert lanes(10, {"VALIDIBOT_WORKER_LANES": "3"}) == 3
    assert lanes(2, {"VALIDIBOT_WORKER_LANES": "8"}) == 2  # never more lanes than envelopes
    assert lanes(10, {}) == min(10, len(os.sched_getaffinity(0)))
    assert lanes(10, {"VALIDIBOT_SANDBOX": "container"}) == 1


def test_a_warm_lane_kills_what_a_model_left_running_before_the_next_model(tmp_path: Path) -> None:
    """Two models in one warm sandbox: the first leaves a daemon; it is dead when the first model's run
    returns, and the second model gets a fresh folder with nothing of the first in it."""
    from validibot_pipelines.runtime.sandbox import warm
    from validibot_pipelines.validators.fmi.worker.child import CHILD_MODULE

    orphan = build_hostile("orphan", tmp_path / "fmus")
    good = build_fmu("first_order_lag", tmp_path / "fmus", variant="lane")
    with warm.lane() as lane:
        results, folders, spaces = [], [], []
        for fmu in (orphan, good):
            space = warm.workspace(tmp_path / "work")
            request = space.scratch / "request.json"
            request.write_text(json.dumps({"mode": "simulate", "fmu": str(space.add_input(fmu)), "stop_time": 1.0,
                                           "result_path": str(space.scratch / "result.npy")}))
            results.append(warm.run_python(CHILD_MODULE, [str(request)], workspace=space, timeout=30))
            assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _sleeps_in(p, str(lane.root))]
            folders.append(sorted(p.name for p in space.scratch.iterdir()))
            spaces.append(space.scratch)
        assert [r.returncode for r in results] == [0, 0] and all(r.mode.endswith("+warm") for r in results)
        assert lane.starts == 1  # both models forked from one warm parent
        assert not spaces[0].exists()  # the first model's folder went before the second model's was made
        assert folders[1] == ["child.json", "inputs", "request.json", "result.npy"]
        assert [p.name for p in lane.root.iterdir()] == [spaces[1].name]  # nothing else in the lane's folder
        from validibot_pipelines.runtime import trash

        bins = list(trash._bins.values())  # where the first model's folder went (outside the lane's folder)
        assert bins and not any(b.is_relative_to(lane.root) for b in bins)
        trash.drain()
        assert not any(b.exists() for b in bins)  # deleted, bins and all


def test_a_warm_lane_removes_the_system_v_ipc_a_model_left_before_the_next_model(tmp_path: Path) -> None:
    """System V shared memory, queues and semaphores live in the sandbox's IPC namespace, which the lane's
    models share, and are no files: the second model must not find what the first left under a known key."""
    from validibot_pipelines.runtime.sandbox import warm
    from validibot_pipelines.validators.fmi.worker.child import CHILD_MODULE

    fmu = build_hostile("sysv_ipc", tmp_path / "fmus")
    with warm.lane() as lane:
        said = []
        for _ in range(2):
            space = warm.workspace(tmp_path / "work")
            request = space.scratch / "request.json"
            request.write_text(json.dumps({"mode": "simulate", "fmu": str(space.add_input(fmu)), "stop_time": 1.0,
                                           "result_path": str(space.scratch / "result.npy")}))
            result = warm.run_python(CHILD_MODULE, [str(request)], workspace=space, timeout=30)
            assert result.returncode == 0, result.stderr[-2000:]
            said.append(json.dumps(json.loads((space.scratch / "child.json").read_text())["fmu_log"]))
        assert lane.starts == 1  # both models forked from one warm parent, in one IPC namespace
    assert all("left a segment, a queue and a semaphore set" in text for text in said)  # the attack ran
    assert all("nothing of a previous model" in text for text in said), said[1][:500]


def _sleeps_in(proc: Path, marker: str) -> bool:
    """A live ``sleep 313.25`` (the orphan attack's daemon) whose environment names the lane's folder."""
    try:
        return b"313.25" in (proc / "cmdline").read_bytes() and marker.encode() in (proc / "environ").read_bytes()
    except OSError:
        return False
