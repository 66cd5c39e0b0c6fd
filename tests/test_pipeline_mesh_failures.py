"""Meshing failures through Dagster and the CLI, with real Gmsh: the preview falling back to another 2D
algorithm (and, when every one fails, the volume mesh still attempted), a multi-volume part with one
self-intersecting volume (the good volume's result and every attempt in the envelope, healing reported), and
the scaled Jacobian / SIGE in the metrics and in CEL assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.outcomes import assert_each_fails_naming_the_file, errors

#: MeshAdapt gets one millisecond: a sandboxed Gmsh cannot surface-mesh anything in that time, so it is
#: stopped and the preview must fall back to the next algorithm.
FALLBACK = "preview:\n  algorithms: [{algorithm_2d: 1, timeout_seconds: 0.001}, 6]\n"
NO_PREVIEW = "preview:\n  algorithms: [{algorithm_2d: 1, timeout_seconds: 0.001}]\n"
ONE_STRATEGY = "meshing:\n  strategies: [{name: delaunay, algorithm_3d: 1}]\n"


def test_preview_falls_back_and_a_failed_preview_does_not_skip_the_volume_mesh(pipeline, cad_parts):  # noqa: ANN001
    fallback = pipeline.drop(cad_parts["box"], name="fallback.step", spec=FALLBACK + ONE_STRATEGY)
    no_preview = pipeline.drop(cad_parts["box"], name="no_preview.step", spec=NO_PREVIEW + ONE_STRATEGY)
    outcomes = {o.source_uri: o for o in pipeline.tick()}

    first = outcomes[fallback]
    assert first.success, errors(first, "volume_mesh")
    preview = first.outputs["preview_mesh"]["outputs"]
    assert [(a["algorithm_2d"], a["outcome"]) for a in preview["attempts"]] == [(1, "timeout"), (6, "ok")]
    assert preview["algorithm"] == 6 and preview["triangle_count"] > 12 and preview["preview_uri"]
    assert first.checks["preview_succeeded"][0] is True

    second = outcomes[no_preview]
    preview = second.outputs["preview_mesh"]["outputs"]
    assert preview["algorithm"] is None and preview["preview_uri"] is None and preview["volumes"] == 1
    (warning,) = [m for m in second.outputs["preview_mesh"]["messages"] if m["code"] == "MESH_PREVIEW_FAILED"]
    assert warning["severity"] == "WARNING" and warning["text"].startswith("no_preview.step: ")
    assert "1 MeshAdapt: timeout" in warning["text"] and "volume mesh is still attempted" in warning["text"]
    assert second.checks["preview_succeeded"][0] is False  # said, as a warning that does not block…
    assert second.outputs["volume_mesh"]["status"] == "success"  # …the volume mesh, which still ran
    assert second.checks["mesh_produced"][0] is True


def test_a_part_with_one_self_intersecting_volume_keeps_the_good_volume(pipeline, cad_parts):  # noqa: ANN001
    spec = ("meshing:\n  strategies: [{name: delaunay, algorithm_3d: 1}, {name: hxt, algorithm_3d: 10}]\n"
            "assertions:\n  - {name: jacobian, expr: 'o.sj_min > 0'}\n")
    uri = pipeline.drop(cad_parts["one_bad_volume"], name="pair.step", spec=spec)
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert_each_fails_naming_the_file(outcomes, {uri: ("volume_mesh", "MESH_SELF_INTERSECTING")})
    o = outcomes[uri]
    text = errors(o, "volume_mesh")
    assert "PLC Error" in text and "boolean union" in text and "raise meshing.max_elements" not in text
    assert "[MESH_HEALING_DID_NOT_HELP]" in text  # healing was tried, and said so (INFO)
    result = o.outputs["volume_mesh"]["outputs"]
    assert [v["volume"] for v in result["volumes"]] == [2] and result["volumes"][0]["quality"]["elements"] > 0
    assert {(a["volume"], a["strategy"]) for a in result["attempts"]} == {(1, "delaunay"), (1, "hxt"),
                                                                          (2, "delaunay"), (2, "hxt")}
    assert result["failed_volumes"] == {"1": "MESH_SELF_INTERSECTING"}
    assert o.checks["mesh_produced"][0] is False
    assert o.outputs["volume_mesh"]["status"] == "failed_validation"


def _validate(part: Path, spec: str, tmp_path: Path) -> tuple[int, dict]:
    spec_file = tmp_path / f"{part.stem}.spec.yaml"
    spec_file.write_text(spec)
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(part), "--spec",
                           str(spec_file), "--json", "--store", (tmp_path / "store").as_uri()],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    return proc.returncode, json.loads(proc.stdout)


def test_cli_names_a_self_intersecting_part(cad_parts, tmp_path: Path):
    part = tmp_path / "crossed.step"
    part.write_bytes(cad_parts["self_intersecting"].read_bytes())
    rc, out = _validate(part, ONE_STRATEGY, tmp_path)
    assert (rc, out["status"]) == (1, "failed_validation")
    codes = {m["code"]: m for m in out["messages"]}
    assert codes["MESH_SELF_INTERSECTING"]["severity"] == "ERROR"
    assert codes["MESH_SELF_INTERSECTING"]["text"].startswith("crossed.step: ")
    assert codes["MESH_HEALING_DID_NOT_HELP"]["severity"] == "INFO"
    assert out["outputs"]["attempts"][0]["outcome"] == "failed" and out["outputs"]["volumes"] == []
    assert "Traceback" not in json.dumps(out)


def test_cli_reports_the_scaled_jacobian_and_sige_and_asserts_on_them(cad_parts, tmp_path: Path):
    spec = ONE_STRATEGY + ("assertions:\n  - {name: jacobian, expr: 'o.sj_min > 0.05 && o.sige_min > 0'}\n"
                           "  - {name: perfect, expr: 'o.sige_avg > 0.999'}\n")
    rc, out = _validate(cad_parts["box"], spec, tmp_path)
    assert rc == 1, out["messages"]  # 'perfect' is deliberately impossible
    assert [a["passed"] for a in out["outputs"]["assertions"]] == [True, False]
    # A linear tetrahedron's Jacobian is constant, so its scaled Jacobian is 1 unless it is inverted (<= 0).
    assert abs(out["outputs"]["sj_min"] - 1) < 1e-9 and abs(out["outputs"]["sj_avg"] - 1) < 1e-9
    assert 0 < out["outputs"]["sige_min"] <= out["outputs"]["sige_avg"] <= 1
    assert out["outputs"]["preview"]["algorithm"] == 6
