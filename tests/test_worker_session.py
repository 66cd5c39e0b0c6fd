"""The local backend's worker session: one worker process serves a validation's rounds of batch launches.

Each round (every model's probe, then every model's simulation) is still its own manifest with its own bundles,
output envelopes, replay and log; what the rounds share is the trusted worker and its lanes' warm sandboxes. A
model that takes a lane's sandbox down, a launch that overruns its timeout, or a worker killed half-way fail
only what they touched, and the next launch gets a working worker (a new one where the old one is gone).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetRecordsFilter

from tests.hostile_fmus import build_hostile
from validibot_pipelines.orchestration.batching import together
from validibot_pipelines.orchestration.models import intake
from validibot_pipelines.resources.backends.local_process import LocalProcessLauncher, WorkerSession
from validibot_pipelines.validators.fmi import launch as fmi
from validibot_pipelines.validators.fmi.samples.build import build_fmu

SPEC = "simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       "  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def registered(folder: Path, store: str, names: list[str], hostile: tuple[str, ...] = ()) -> list[Any]:
    records = []
    for name in names:
        fmu = build_fmu("first_order_lag", folder, variant=name)
        fmu.with_name(fmu.name + ".validation.yaml").write_text(SPEC)
        records.append(intake(fmu.as_uri(), store_uri=store, model_name=f"s/{fmu.name}"))
    for attack in hostile:
        fmu = build_hostile(attack, folder)
        fmu.with_name(fmu.name + ".validation.yaml").write_text("simulation: {stop_time: 1}\n")
        records.append(intake(fmu.as_uri(), store_uri=store, model_name=f"s/{fmu.name}"))
    return records


def rounds(records: list[Any], store: str, backend: Any, attempt: str) -> tuple[list, list]:
    """Every model's probe in one launch, then every model's simulation in the next (as a validation runs)."""
    probes = together(records, lambda r, b: fmi.probe(r, store_uri=store, backend=b, attempt=attempt), backend)
    sims = together(list(zip(records, probes, strict=True)),
                    lambda item, b: fmi.simulate(item[0], store_uri=store, backend=b, attempt=attempt,
                                                 probe_out=item[1][0]), backend)
    return probes, sims


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_session_serves_both_rounds_from_one_worker_with_the_results_of_fresh_workers(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, ["a", "b", "c"])
    session = WorkerSession.start()
    try:
        probes, sims = rounds(records, store, LocalProcessLauncher(session=session), "warm")
        pid = session._proc.pid
    finally:
        session.close()
    fresh_probes, fresh_sims = rounds(records, store, LocalProcessLauncher(), "fresh")
    launch_ids = {rec.launch_id for _, rec in probes + sims}
    assert launch_ids == {f"pid:{pid}"}  # one worker process for both rounds of all three models
    assert {rec.launch_id for _, rec in fresh_probes} != {rec.launch_id for _, rec in fresh_sims}
    for (out, rec), (fresh, _) in zip(sims, fresh_sims, strict=True):
        assert out.status.value == fresh.status.value == "success"
        assert out.outputs["output_values"] == fresh.outputs["output_values"]
        assert rec.details["batch_size"] == 3
        # Each model's record holds its own lines of the worker's log, not another model's.
        assert f"for run {out.run_id}" in rec.log_tail
        assert all(f"for run {other.run_id}" not in rec.log_tail for other, _ in sims if other is not out)
    assert not alive(pid)  # close ends the worker


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if pid == ancestor:
            return True
    return False


def sandbox_parents(worker: int) -> set[int]:
    """The pids of the warm sandboxes' parents (``sandbox/zygote.py``) under the worker process ``worker``."""
    from tests.processes import processes_running
    from validibot_pipelines.runtime.sandbox.warm import ZYGOTE_MODULE

    # bubblewrap's own processes carry the command in their argv too: only the interpreter counts
    pids = {int(line.split()[0]) for line in processes_running(ZYGOTE_MODULE) if "bwrap" not in line.split()[1]}
    return {pid for pid in pids if descends_from(pid, worker)}


def every_lanes_sandbox(worker: int) -> set[int]:
    """The sandbox parents under ``worker`` once every lane's is up (waiting up to 60 s); asserts they all came."""
    from validibot_pipelines.runtime.batch import lanes

    deadline = time.monotonic() + 60
    while len(found := sandbox_parents(worker)) < lanes(1 << 16) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) == lanes(1 << 16), found
    return found


def test_a_warmed_session_starts_its_sandboxes_ahead_and_keeps_them_for_every_round(tmp_path: Path) -> None:
    """``warm``: each lane's sandbox is up before the first launch and still the same process after both
    rounds, with the results of fresh workers. (A sandbox started from a thread that later ended used to die
    with it, PR_SET_PDEATHSIG being per thread: every round paid a new one.)"""
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, ["w1", "w2", "w3"])
    session = WorkerSession.start(warm=("fmi",))
    try:
        worker = session._proc.pid
        ahead = every_lanes_sandbox(worker)  # before any model was sent
        backend = LocalProcessLauncher(session=session)
        probes = together(records, lambda r, b: fmi.probe(r, store_uri=store, backend=b, attempt="w"), backend)
        after_probes = sandbox_parents(worker)
        sims = together(list(zip(records, probes, strict=True)),
                        lambda item, b: fmi.simulate(item[0], store_uri=store, backend=b, attempt="w",
                                                     probe_out=item[1][0]), backend)
        after_sims = sandbox_parents(worker)
    finally:
        session.close()
    assert after_probes == after_sims == ahead  # the same sandboxes served both rounds
    assert not any(alive(pid) for pid in ahead)  # and went with the session
    assert [out.status.value for out, _ in sims] == ["success"] * 3
    assert {rec.launch_id for _, rec in probes + sims} == {f"pid:{worker}"}
    _, fresh = rounds(records, store, LocalProcessLauncher(), "fresh")
    assert [out.outputs["output_values"] for out, _ in sims] == [out.outputs["output_values"] for out, _ in fresh]


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_session_started_bare_is_told_later_which_validators_to_warm(tmp_path: Path) -> None:
    """``validibot validate`` starts its session before it knows the validators (``warm=("-",)``: sandboxes
    with nothing imported), then names them (``warm_up``): the same sandboxes import fmpy and numpy (their
    memory grows by tens of MB) and then serve both rounds."""
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, ["b1", "b2"])
    session = WorkerSession.start(warm=("-",))
    try:
        worker = session._proc.pid
        bare = every_lanes_sandbox(worker)
        deadline = time.monotonic() + 60
        time.sleep(0.5)  # a bare parent has nothing more to import; its size is settled
        before = {pid: rss_bytes(pid) for pid in bare}
        session.warm_up(("fmi",))
        while time.monotonic() < deadline and not all(rss_bytes(p) > before[p] + (15 << 20) for p in bare):
            time.sleep(0.05)
        grown = {pid: rss_bytes(pid) - before[pid] for pid in bare}
        assert all(size > 15 << 20 for size in grown.values()), grown  # fmpy, numpy, lxml imported there
        probes, sims = rounds(records, store, LocalProcessLauncher(session=session), "bare")
        assert sandbox_parents(worker) == bare  # the warmed sandboxes served the rounds
    finally:
        session.close()
    assert [out.status.value for out, _ in sims] == ["success"] * 2
    assert {rec.launch_id for _, rec in probes + sims} == {f"pid:{worker}"}


def test_a_model_that_kills_its_sandbox_fails_alone_and_the_session_serves_the_next_round(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, ["k1", "k2"], hostile=("kill_parent",))
    session = WorkerSession.start()
    try:
        _, sims = rounds(records, store, LocalProcessLauncher(session=session), "first")
        pid = session._proc.pid
        _, again = rounds(records[:2], store, LocalProcessLauncher(session=session), "second")
        assert session._proc.pid == pid  # the same worker: only the lane's sandbox was restarted
    finally:
        session.close()
    statuses = [out.status.value for out, _ in sims]
    assert statuses == ["success", "success", "failed_validation"]
    assert "FMU_CRASHED" in json.dumps([m.model_dump(mode="json") for m in sims[2][0].messages])
    assert [out.status.value for out, _ in again] == ["success", "success"]


def test_a_worker_that_stops_answering_is_stopped_at_the_timeout_and_the_next_launch_gets_a_new_one(
        tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, ["t1", "t2"])
    hung = tmp_path / "hung-python"  # a worker that reads nothing and never answers
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    session = WorkerSession.start(python_executable=str(hung), grace_seconds=1.0)
    launcher = LocalProcessLauncher(session=session)
    try:
        hung_pid = session._proc.pid
        started = time.monotonic()
        probes = together(records, lambda r, b: fmi.probe(r, store_uri=store, backend=b, attempt="p",
                                                          timeout_seconds=1), launcher)
        assert time.monotonic() - started < 15  # the launch's timeout is 2 s (1 s for each of two envelopes)
        assert not alive(hung_pid)
        for out, record in probes:
            assert record.timed_out and out.status.value == "failed_runtime"
            assert "timed out and was killed" in out.messages[0].text
        session.python_executable = sys.executable
        again = together(records, lambda r, b: fmi.probe(r, store_uri=store, backend=b, attempt="q"), launcher)
        assert [out.status.value for out, _ in again] == ["success", "success"]
        assert session._proc is not None and session._proc.pid != hung_pid
    finally:
        session.close()


def test_a_session_worker_killed_half_way_replays_its_finished_models_on_the_next_launch(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    records = registered(tmp_path / "models", store, [f"cut{i}" for i in range(4)])
    outputs = tmp_path / "store" / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VALIDIBOT_WORKER_LANES", "1")
        session = WorkerSession.start()
    launcher = LocalProcessLauncher(session=session)

    def kill_after_two() -> None:
        while len(list(outputs.glob("*-simulation-first-*/output.json"))) < 2:
            time.sleep(0.01)
        os.killpg(session._proc.pid, signal.SIGKILL)

    try:
        watcher = threading.Thread(target=kill_after_two, daemon=True)
        watcher.start()
        first = together(records, lambda r, b: fmi.simulate(r, store_uri=store, backend=b, attempt="first"),
                         launcher)
        watcher.join(timeout=60)
        statuses = sorted(out.status.value for out, _ in first)
        assert statuses == ["failed_runtime", "failed_runtime", "success", "success"], statuses
        second = together(records, lambda r, b: fmi.simulate(r, store_uri=store, backend=b, attempt="first"),
                          launcher)
    finally:
        session.close()
    assert [out.status.value for out, _ in second] == ["success"] * 4
    assert sorted(rec.backend for _, rec in second) == ["local", "local", "replay", "replay"]


def test_a_grouped_run_shares_one_worker_across_its_steps_and_ends_it_with_the_run(pipeline, tmp_path,  # noqa: ANN001
                                                                                   monkeypatch) -> None:
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "3")
    for variant in ("g1", "g2", "g3"):
        pipeline.drop(build_fmu("first_order_lag", tmp_path / "burst", variant=variant),
                      name=f"burst/first_order_lag-{variant}.fmu", spec=SPEC)
    outcomes = pipeline.tick()
    assert len({o.run_id for o in outcomes}) == 1 and all(o.checks["cel_assertions"][0] for o in outcomes)
    launch_ids = set()
    for outcome in outcomes:
        for asset in ("fmu_probe", "fmu_simulation"):
            meta = pipeline.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[outcome.partition_key]),
                limit=1).records[0].asset_materialization.metadata
            assert meta["batch_size"].value == 3
            launch_ids.add(meta["launch_id"].value)
    assert len(launch_ids) == 1  # probe and simulation steps: one worker process
    assert not alive(int(launch_ids.pop().removeprefix("pid:")))  # the run's teardown stopped it


def test_a_warmed_session_imports_its_validators_runners_and_their_preloads_ahead() -> None:
    """The runner modules of the validators named (and what they list in ``PRELOAD``: fmpy, pyarrow) are
    imported by the session before its first model, not on the first model's lane; a name that is no
    validator is skipped."""
    import subprocess

    from validibot_pipelines.validators import runner_modules

    assert runner_modules(["fmi", "no-such"]) == ["validibot_pipelines.validators.fmi.worker.probe",
                                                  "validibot_pipelines.validators.fmi.worker.simulate"]
    # A Dagster run's session (``fmi:assets``) also imports what only the assets use: the plot and matplotlib.
    assert runner_modules(["fmi:assets"]) == ["validibot_pipelines.validators.fmi.worker.plot",
                                              "validibot_pipelines.validators.fmi.worker.probe",
                                              "validibot_pipelines.validators.fmi.worker.simulate"]
    watched = ('fmpy', 'pyarrow.parquet', 'matplotlib.figure')
    for modules, imported in ((["validibot_pipelines.validators.fmi.worker.simulate"], watched[:2]),
                              (runner_modules(["fmi:assets"]), watched)):
        code = ("import sys; from validibot_pipelines.runtime.session import _import_runners; "
                f"before = {{m for m in {watched!r} if m in sys.modules}}; _import_runners({modules!r}); "
                f"print(sorted(before), sorted(m for m in {watched!r} if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        assert out == f"[] {sorted(imported)!r}"


def test_a_single_models_run_probes_and_simulates_on_one_warm_worker_every_line_streamed(pipeline,  # noqa: ANN001
                                                                                         tmp_path) -> None:  # noqa: ANN001
    """A run of one model starts its worker with the run (one lane, warmed for FMI while intake runs): the
    probe and the simulation are forked from the same warm sandbox, and every worker line still reaches the
    run's event log through each launch's own Pipes session, as from a fresh worker."""
    pipeline.drop(build_fmu("first_order_lag", tmp_path / "one", variant="s1"), name="first_order_lag-s1.fmu",
                  spec=SPEC)
    outcomes = pipeline.tick()
    assert len(outcomes) == 1 and outcomes[0].checks["cel_assertions"][0]
    launch_ids = set()
    for asset in ("fmu_probe", "fmu_simulation"):
        record = pipeline.instance.fetch_materializations(AssetKey(asset), limit=1).records[0]
        launch_ids.add(record.asset_materialization.metadata["launch_id"].value)
    assert len(launch_ids) == 1  # one worker process for both steps
    assert not alive(int(launch_ids.pop().removeprefix("pid:")))  # ended with the run
    lines = {(e.step_key, e.user_message.split(" ")[0]) for e in pipeline.instance.all_logs(outcomes[0].run_id)
             if e.dagster_event is None}
    assert {("fmu_probe", "probe"), ("fmu_simulation", "simulating"), ("fmu_simulation", "simulated")} <= lines


def test_a_single_models_launch_that_hangs_its_worker_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    """A single launch on a session whose worker stops answering is killed at the launch's timeout, as a fresh
    worker would be, and the next single launch gets a new worker that answers."""
    session = WorkerSession.start(warm=("-",))
    try:
        first = session._proc.pid
        os.kill(first, signal.SIGSTOP)  # stops answering, as a wedged worker would
        child = session.run_input((tmp_path / "nothing.json").as_uri(), run_id="hung", pipes={}, timeout=2)
        assert child is not None and child.timed_out and not alive(first)
        child = session.run_input((tmp_path / "nothing.json").as_uri(), run_id="next", pipes={}, timeout=30)
        assert child is not None and not child.timed_out and child.returncode == 3  # answered: no such envelope
        assert session._proc.pid != first and "does not exist" in child.stderr
    finally:
        session.close()


def test_a_stopped_workers_last_lines_stay_in_the_launchs_log(tmp_path: Path) -> None:
    """A worker stopped at a launch's timeout may still write as it ends (its SIGTERM handler cleans up and
    says so): those lines belong to the launch's log, as a fresh worker's would."""
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\ntrap 'echo \"stopping: last words\" >&2; exit 1' TERM\nread request\n"
                    "echo 'started the request' >&2\nwhile true; do sleep 0.05; done\n")
    fake.chmod(0o755)
    session = WorkerSession(python_executable=str(fake), grace_seconds=5)
    try:
        child = session.run_input((tmp_path / "in.json").as_uri(), run_id="r", pipes={}, timeout=1.5)
        assert child is not None and child.timed_out
        assert "started the request" in child.stderr and "stopping: last words" in child.stderr
    finally:
        session.close()
