"""Meshing worker pieces without Dagster: scoring, targets, the exhaustive search, and the spec blocks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from validibot_pipelines.spec import SpecError, load_spec
from validibot_pipelines.validators.mesh.envelopes import (
    MeshingOptions,
    MeshInputs,
    MeshQuality,
    MeshStrategy,
    QualityTargets,
)
from validibot_pipelines.validators.mesh.worker.calls import MeshFailure
from validibot_pipelines.validators.mesh.worker.quality import score
from validibot_pipelines.validators.mesh.worker.volume import mesh_part


def _quality(**kw) -> MeshQuality:  # noqa: ANN003
    base = {"sicn_min": 0.3, "sicn_avg": 0.8, "sicn_max": 1.0, "gamma_min": 0.3, "gamma_avg": 0.75,
            "elements": 100, "nodes": 40}
    return MeshQuality(**{**base, **kw})


def test_score_and_targets():
    assert score(_quality().model_dump()) == pytest.approx(0.4 * 0.3 + 0.3 * 0.8 + 0.1 * 0.3 + 0.2 * 0.75)
    assert score(_quality(sicn_min=-0.1).model_dump()) == 0.0  # inverted elements are worthless
    assert score(_quality(sicn_min=0.4).model_dump()) > score(_quality().model_dump())
    targets = QualityTargets(sicn_min=0.35, gamma_avg=0.7)
    assert targets.unmet(_quality()) == ["sicn_min 0.300 < 0.35"]
    assert targets.unmet(_quality(sicn_min=0.4)) == []
    assert QualityTargets().unmet(_quality(sicn_min=0.0))  # no targets still means "no flat elements"


def test_exhaustive_without_early_stop_tries_all_and_keeps_the_best(cad_parts, tmp_path):  # noqa: ANN001
    strategies = [MeshStrategy(name="delaunay", algorithm_3d=1), MeshStrategy(name="frontal", algorithm_3d=4),
                  MeshStrategy(name="hxt", algorithm_3d=10)]
    inputs = MeshInputs(targets=QualityTargets(sicn_min=0.1),
                        meshing=MeshingOptions(strategies=strategies, early_stop=False))
    result = mesh_part(cad_parts["cylinder_with_hole"], "cyl.step", tmp_path, inputs, log=lambda _m: None)
    attempts = result.outputs.attempts
    assert [a.strategy for a in attempts] == ["delaunay", "frontal", "hxt"]
    assert all(a.outcome == "met_targets" for a in attempts)
    best = max(attempts, key=lambda a: a.score or 0)
    assert result.outputs.strategy == best.strategy
    assert result.outputs.volumes[0].score == best.score
    assert result.msh.is_file() and result.result_json.is_file() and result.quality_json.is_file()
    # Gmsh reads the merged file back: the same tetrahedra, every SICN as reported.
    script = ("import gmsh, sys, numpy as np; gmsh.initialize(interruptible=False); "
              "gmsh.option.setNumber('General.Terminal', 0); gmsh.merge(sys.argv[1]); "
              "_, tags, _ = gmsh.model.mesh.getElements(3); tags = np.concatenate(tags); "
              "q = gmsh.model.mesh.getElementQualities(tags, 'minSICN'); print(len(tags), min(q))")
    read = subprocess.run([sys.executable, "-c", script, str(result.msh)], capture_output=True, text=True,
                          timeout=60)
    count, sicn_min = read.stdout.split()
    assert int(count) == result.outputs.total_elements
    assert float(sicn_min) == pytest.approx(result.outputs.sicn_min, abs=1e-6)


def test_step_without_shapes_is_reported_not_crashed(tmp_path):  # noqa: ANN001
    part = tmp_path / "nonsense.step"
    part.write_text("ISO-10303-21;\nHEADER;\nFILE_SCHEMA(('AUTOMOTIVE_DESIGN'));\nENDSEC;\nDATA;\n"
                    "#1 = NOT_A_REAL_ENTITY(#99, 'x');\nENDSEC;\nEND-ISO-10303-21;\n")
    with pytest.raises(MeshFailure) as info:
        mesh_part(part, "nonsense.step", tmp_path / "w", MeshInputs(), log=lambda _m: None)
    assert info.value.code in {"MESH_NO_SOLIDS", "MESH_CAD_UNREADABLE"}
    assert info.value.text.startswith("nonsense.step: ") and not info.value.system_fault


def test_spec_quality_and_meshing_blocks():
    spec = load_spec("quality: {sicn_min: 0.2, gamma_avg: 0.6}\nmeshing:\n  max_elements: 5000\n"
                     "  strategies: [{name: a, algorithm_3d: 10, size_factor: 0.05}]\n", "p.step.validation.yaml")
    assert spec.quality.sicn_min == 0.2 and spec.meshing.max_elements == 5000
    assert spec.meshing.strategies[0].algorithm_3d == 10
    assert load_spec(spec.to_yaml(), "again").model_dump() == spec.model_dump()
    with pytest.raises(SpecError, match=r"line 1: quality.sicn_mn: unknown key .*did you mean 'sicn_min'"):
        load_spec("quality: {sicn_mn: 0.2}\n", "p.yaml")
    with pytest.raises(SpecError, match="duplicate strategy names"):
        load_spec("meshing:\n  strategies: [{name: a}, {name: a}]\n", "p.yaml")
    with pytest.raises(SpecError, match="algorithm_3d"):
        load_spec("meshing:\n  strategies: [{name: a, algorithm_3d: 99}]\n", "p.yaml")


def test_stopping_the_worker_leaves_no_gmsh_process_behind(local_root, cad_parts):  # noqa: ANN001
    """The backend stops a worker mid-search (SIGTERM, then SIGKILL): no Gmsh child may survive it."""
    from tests.processes import assert_none_left, stop_while_a_child_runs
    from validibot_pipelines.envelopes import InputFileItem
    from validibot_pipelines.intake.common import sha256_file
    from validibot_pipelines.orchestration.launch import launch_step
    from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
    from validibot_pipelines.storage import get_store, join_uri
    from validibot_pipelines.validators.mesh.launch import MESH_VALIDATOR
    from validibot_pipelines.validators.mesh.worker.calls import CHILD_MODULE

    part = cad_parts["two_volume_assembly"]
    uri = join_uri(local_root, "in", part.name)
    get_store(uri).upload_file(part, uri)
    sha, size = sha256_file(part)
    item = InputFileItem(name=part.name, mime_type="model/step", role="primary-model", uri=uri, size_bytes=size,
                         sha256=sha)
    slow = MeshInputs(meshing=MeshingOptions(strategies=[MeshStrategy(name="far_too_fine", size_factor=0.002)],
                                             strategy_timeout_seconds=300))
    out, record = stop_while_a_child_runs(lambda timeout: launch_step(
        store_uri=local_root, run_id=f"stop{timeout:g}", validator=MESH_VALIDATOR, files=[item],
        inputs=slow.model_dump(mode="json"), backend=LocalSubprocessBackend(grace_seconds=2),
        timeout_seconds=timeout), CHILD_MODULE, timeouts=(4, 12, 30))
    assert record.timed_out and out.status == "failed_runtime"
    assert_none_left(CHILD_MODULE, within=10)


def test_gmsh_that_cannot_load_is_the_workers_fault_not_the_parts(cad_parts, tmp_path, monkeypatch):  # noqa: ANN001
    """A worker image missing a library Gmsh links against (libgomp, as first seen in the mesh image) must end
    failed_runtime naming the fix, never 'your CAD file is unreadable'."""
    from validibot_pipelines.validators.mesh.envelopes import MeshPreviewInputs
    from validibot_pipelines.validators.mesh.worker.preview import preview_part

    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "gmsh.py").write_text(
        "raise OSError('libgomp.so.1: cannot open shared object file: No such file or directory')\n")
    from validibot_pipelines.runtime.sandbox import bwrap, run_untrusted
    from validibot_pipelines.validators.mesh.worker import calls

    def with_shadow(cmd, *, readonly=(), env=None, **kwargs):  # noqa: ANN001, ANN202 - the sandbox scrubs PYTHONPATH
        paths = f"{shadow}:{bwrap.PACKAGE_DIR.parent}"
        return run_untrusted(cmd, readonly=[*readonly, shadow], env={**(env or {}), "PYTHONPATH": paths}, **kwargs)

    monkeypatch.setattr(calls, "run_untrusted", with_shadow)
    with pytest.raises(MeshFailure) as caught:
        preview_part(cad_parts["box"], "box.step", tmp_path / "work", MeshPreviewInputs(), log=lambda _m: None)
    assert caught.value.code == "MESH_ENGINE_UNAVAILABLE" and caught.value.system_fault
    assert "libgomp.so.1" in caught.value.text and "containers/apt-mesh.txt" in caught.value.text
    with pytest.raises(MeshFailure) as caught:
        mesh_part(cad_parts["box"], "box.step", tmp_path / "work2", MeshInputs(), log=lambda _m: None)
    assert caught.value.code == "MESH_ENGINE_UNAVAILABLE" and caught.value.system_fault
