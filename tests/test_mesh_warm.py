"""The volume mesh imports the part once and forks its candidates from there, cold or in a warm worker lane.

What a part's mesh must still be: the same candidates' meshes as one fresh import per candidate gave (the
sandboxed ``volume`` mode, the former path), one sandboxed child per part whose candidates are forked from
the process that imported it, a candidate that crashes, hangs or runs out of memory failing alone (the others'
results stand), an import that crashes or hangs reported as before, and the same outcome in a batch worker.
Misbehaviour comes from a shadow ``gmsh`` module put in front of the real one inside the sandbox: it wraps
Gmsh's own functions, so everything else is real Gmsh/OpenCASCADE.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import processes_running
from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.runtime.sandbox import bwrap, warm
from validibot_pipelines.validators.mesh.envelopes import MeshingOptions, MeshInputs, MeshStrategy, QualityTargets
from validibot_pipelines.validators.mesh.worker import calls
from validibot_pipelines.validators.mesh.worker.calls import MeshFailure
from validibot_pipelines.validators.mesh.worker.volume import mesh_part

COARSE = [MeshStrategy(name="delaunay_coarse", algorithm_3d=1), MeshStrategy(name="frontal_coarse", algorithm_3d=4),
          MeshStrategy(name="hxt_coarse", algorithm_3d=10)]
EXHAUSTIVE = MeshInputs(targets=QualityTargets(sicn_min=0.35), meshing=MeshingOptions(strategies=COARSE,
                                                                                       early_stop=False))
QUIET = {"log": lambda _m: None}

SHADOW = '''
import importlib.util, os, signal, sys, time

_spec = importlib.util.spec_from_file_location("gmsh", {real!r})
_gmsh = importlib.util.module_from_spec(_spec)
sys.modules["gmsh"] = _gmsh
_spec.loader.exec_module(_gmsh)
_generate, _import = _gmsh.model.mesh.generate, _gmsh.model.occ.importShapes


def generate(dim=3):
    algorithm = int(_gmsh.option.getNumber("Mesh.Algorithm3D"))
    if dim == 3 and algorithm == 4:      # Frontal: a segfault
        os.kill(os.getpid(), signal.SIGSEGV)
    if dim == 3 and algorithm == 7:      # MMG3D: a hang
        time.sleep(3600)
    if dim == 3 and algorithm == 10:     # HXT: memory (its optimiser runs only on a second pass now)
        hog = [bytearray(16 << 20) for _ in range(100000)]
    return _generate(dim)


def importShapes(path, *args, **kwargs):
    if "crash_on_import" in path:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang_on_import" in path:
        time.sleep(3600)
    return _import(path, *args, **kwargs)


_gmsh.model.mesh.generate = staticmethod(generate)
_gmsh.model.occ.importShapes = staticmethod(importShapes)
'''


@pytest.fixture
def misbehaving_gmsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every sandboxed Gmsh (cold or warm) imports the shadow ``gmsh`` first: bound read-only into the sandbox
    and first on its PYTHONPATH (the sandbox scrubs the environment, so it is set where the sandbox is made)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    real = importlib.util.find_spec("gmsh").origin
    (shadow / "gmsh.py").write_text(SHADOW.format(real=real))
    real_env, real_command = bwrap.sandbox_env, bwrap.command

    def env(scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        found = real_env(scratch, extra)
        return {**found, "PYTHONPATH": f"{shadow}:{found['PYTHONPATH']}"}

    def command(cmd: list[str], *, scratch: Path, readonly=(), env: dict[str, str]) -> list[str]:  # noqa: ANN001
        return real_command(cmd, scratch=scratch, readonly=[*readonly, shadow], env=env)

    monkeypatch.setattr(bwrap, "sandbox_env", env)
    monkeypatch.setattr(bwrap, "command", command)
    return shadow


@contextlib.contextmanager
def where(kind: str) -> Iterator[warm.Lane | None]:
    """``cold``: this thread is no lane (a fresh sandbox per call); ``warm``: a worker lane, as batch workers run."""
    if kind == "cold":
        yield None
        return
    with warm.lane() as lane:
        yield lane


def child_files(workdir: Path, lane: warm.Lane | None) -> dict[str, dict]:
    """The JSON files the part's sandboxed child and its forked candidates left (read by the test, trusted)."""
    root = lane.root if lane is not None else workdir
    (request,) = [p for p in root.rglob("request.json") if json.loads(p.read_text())["mode"] == "mesh"]
    return {p.name: json.loads(p.read_text()) for p in request.parent.glob("*.json")}


def comparable(result) -> dict:  # noqa: ANN001
    """A mesh's verdict without its timings."""
    out = result.outputs.model_dump(exclude={"execution_seconds", "msh_uri", "result_uri", "quality_uri"})
    for attempt in out["attempts"]:
        attempt.pop("seconds")
    return out


@pytest.mark.parametrize("name", ["box", "cylinder_with_hole", "two_volume_assembly", "box_stl"])
def test_every_candidate_is_the_mesh_a_fresh_import_gives(cad_parts, tmp_path, name):  # noqa: ANN001
    """Forked from one import, each candidate's quality equals that of the former path: a sandboxed child of
    its own that imports the part and meshes the one volume with the one strategy."""
    result = mesh_part(cad_parts[name], f"{name}.step", tmp_path / "mesh", EXHAUSTIVE, **QUIET)
    assert result.part_imports == 1
    diagonal = _diagonal(cad_parts[name], tmp_path)
    for attempt in result.outputs.attempts:
        strategy = next(s for s in COARSE if s.name == attempt.strategy)
        alone = calls.call("volume", {"part": str(cad_parts[name]), "volume": attempt.volume,
                                      "strategy": strategy.model_dump(), "diagonal": diagonal, "timeout": 120,
                                      "targets": EXHAUSTIVE.targets.model_dump(),
                                      "max_elements": EXHAUSTIVE.meshing.max_elements,
                                      "msh": str(tmp_path / "alone.msh")}, tmp_path / "alone", 120)
        assert alone.ok, alone.problem
        assert attempt.quality is not None and attempt.quality.model_dump() == alone.data["quality"], attempt
    totals = result.outputs
    assert totals.total_elements == sum(v.quality.elements for v in totals.volumes)
    assert result.msh.is_file() and result.msh.stat().st_size > 0


def _diagonal(part: Path, tmp_path: Path) -> float:
    found = calls.call("inspect", {"part": str(part)}, tmp_path / "inspect", 120)
    assert found.ok, found.problem
    return found.data["bbox"]["diagonal"]


@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_one_sandboxed_child_per_part_imports_it_once_and_forks_the_candidates(cad_parts, tmp_path, kind,
                                                                                monkeypatch):  # noqa: ANN001
    launched: list[list[str]] = []
    cold = calls.run_untrusted

    def counted(cmd, **kwargs):  # noqa: ANN001, ANN202
        launched.append(cmd)
        return cold(cmd, **kwargs)

    monkeypatch.setattr(calls, "run_untrusted", counted)
    part = cad_parts["two_volume_assembly"]
    with where(kind) as lane:
        result = mesh_part(part, part.name, tmp_path / "mesh", EXHAUSTIVE, **QUIET)
        files = child_files(tmp_path / "mesh", lane)
        if lane is not None:
            assert (lane.jobs, lane.starts, launched) == (1, 1, [])  # one fork of the warm sandbox per part
    if lane is None:
        assert len(launched) == 1
    assert result.part_imports == 1 and files["inspect.json"]["imports"] == 1
    candidates = {name: data for name, data in files.items() if name.startswith("v")}
    assert sorted(candidates) == sorted(f"v{v}-{s.name}.json" for v in (1, 2) for s in COARSE)
    importer = files["inspect.json"]["pid"]
    for data in [*candidates.values(), files["merge.json"]]:  # each forked from the process holding the part
        assert data["ok"] and data["parent"] == importer
    for data in candidates.values():
        assert data["imports"] == 1  # inherited from that process: none imported the part again
    assert [a.outcome for a in result.outputs.attempts].count("met_targets") >= 2


def test_cold_and_warm_give_the_same_mesh(cad_parts, tmp_path):  # noqa: ANN001
    for name in ("cylinder_with_hole", "two_volume_assembly"):
        inputs = MeshInputs(targets=QualityTargets(sicn_min=0.35))
        cold = mesh_part(cad_parts[name], name, tmp_path / f"cold-{name}", inputs, **QUIET)
        with warm.lane():
            warmed = [mesh_part(cad_parts[name], name, tmp_path / f"warm-{name}-{i}", inputs, **QUIET)
                      for i in range(2)]
        assert comparable(cold) == comparable(warmed[0]) == comparable(warmed[1])
        assert cold.msh.read_bytes() == warmed[0].msh.read_bytes() == warmed[1].msh.read_bytes()


@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_a_crashing_a_hanging_and_a_memory_hungry_candidate_fail_alone(cad_parts, tmp_path, kind,
                                                                        misbehaving_gmsh):  # noqa: ANN001
    strategies = [MeshStrategy(name="segfaults", algorithm_3d=4), MeshStrategy(name="hangs", algorithm_3d=7,
                                                                               timeout_seconds=2),
                  MeshStrategy(name="eats_memory", algorithm_3d=10, optimize_netgen=True),
                  MeshStrategy(name="fine", algorithm_3d=1)]
    inputs = MeshInputs(meshing=MeshingOptions(strategies=strategies, early_stop=False, parallel_volumes=1))
    calls.set_limits(SandboxLimits(memory_bytes=1024**3))
    part = cad_parts["two_volume_assembly"]
    try:
        with where(kind):
            result = mesh_part(part, part.name, tmp_path / "mesh", inputs, **QUIET)
            alone = mesh_part(part, part.name, tmp_path / "alone", inputs.model_copy(update={
                "meshing": MeshingOptions(strategies=strategies[3:])}), **QUIET)
    finally:
        calls.set_limits(SandboxLimits())
    by = {(a.volume, a.strategy): a for a in result.outputs.attempts}
    for volume in (1, 2):
        crashed, hung, hungry = by[volume, "segfaults"], by[volume, "hangs"], by[volume, "eats_memory"]
        assert (crashed.outcome, crashed.detail) == ("failed", "the Gmsh process crashed (SIGSEGV)")
        assert hung.outcome == "timeout" and hung.detail.startswith("timed out after 2.")
        assert hungry.outcome == "failed" and hungry.detail.startswith("stopped at a sandbox limit: it exceeded "
                                                                       "the sandbox's address-space limit of 1 GiB")
        assert by[volume, "fine"].outcome == "met_targets"
    assert result.outputs.strategy == "fine" and result.part_imports == 1
    assert comparable(result)["volumes"] == comparable(alone)["volumes"]  # the others' results stand
    assert result.msh.read_bytes() == alone.msh.read_bytes()


@pytest.mark.parametrize("kind", ["cold", "warm"])
@pytest.mark.parametrize(("trouble", "problem"), [("crash_on_import", "the Gmsh process crashed (SIGSEGV)"),
                                                  ("hang_on_import", "timed out after 2.0 s")])
def test_a_part_whose_import_crashes_or_hangs_is_reported_as_before(cad_parts, tmp_path, kind, trouble, problem,
                                                                     misbehaving_gmsh):  # noqa: ANN001
    part = tmp_path / f"{trouble}.step"
    part.write_bytes(cad_parts["box"].read_bytes())
    inputs = MeshInputs(meshing=MeshingOptions(strategy_timeout_seconds=2))
    with where(kind), pytest.raises(MeshFailure) as caught:
        mesh_part(part, part.name, tmp_path / "mesh", inputs, **QUIET)
    assert caught.value.code == "MESH_CAD_UNREADABLE" and not caught.value.system_fault
    assert caught.value.text.startswith(f"{part.name}: Gmsh/OpenCASCADE could not read the part ({problem}")


def test_parts_meshed_through_one_batch_worker_match_the_cold_runs(cad_parts, tmp_path):  # noqa: ANN001
    """Two parts' mesh steps in one local batch worker launch (lanes, warm sandboxes): each envelope's verdict
    is the one the part gets meshed cold, alone."""
    from validibot_pipelines.orchestration.batching import together
    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
    from validibot_pipelines.storage import get_store
    from validibot_pipelines.validators.mesh import launch

    store = (tmp_path / "store").as_uri()
    spec = "quality: {sicn_min: 0.35}\n"
    records, alone = [], []
    for name in ("cylinder_with_hole", "two_volume_assembly"):
        part = tmp_path / "parts" / f"{name}.step"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(cad_parts[name].read_bytes())
        spec_file = part.with_name(part.name + ".validation.yaml")
        spec_file.write_text(spec)
        records.append(intake(part.as_uri(), store_uri=store, spec_uri=spec_file.as_uri(),
                              model_name=f"warm/{part.name}"))
        alone.append(mesh_part(part, part.name, tmp_path / f"alone-{name}", MeshInputs(
            targets=QualityTargets(sicn_min=0.35)), **QUIET))
    zygotes: list[str] = []
    done = threading.Event()

    def watch() -> None:  # the batch worker's lanes fork the parts' Gmsh children from warm sandboxes
        while not done.is_set() and not zygotes:
            zygotes.extend(processes_running(warm.ZYGOTE_MODULE))  # its command line names no module
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        results = together(records, lambda r, b: launch.mesh(r, store_uri=store, backend=b, attempt="warm"),
                           LocalSubprocessBackend())
    finally:
        done.set()
        watcher.join()
    assert len({record.launch_id for _, record in results}) == 1  # one worker process for both parts
    assert zygotes, "no warm sandbox for meshing was seen in the batch worker"
    for (out, _), cold in zip(results, alone, strict=True):
        assert out.status.value == "success", out.messages
        outputs = {k: v for k, v in out.outputs.items() if k not in ("execution_seconds", "msh_uri", "result_uri",
                                                                      "quality_uri")}
        for attempt in outputs["attempts"]:
            attempt.pop("seconds")
        assert outputs == comparable(cold)
        assert get_store(out.outputs["msh_uri"]).read_bytes(out.outputs["msh_uri"]) == cold.msh.read_bytes()
