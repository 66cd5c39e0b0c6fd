"""The meshing validator through Dagster for real: sensor → cad_file → preview_mesh → volume_mesh (real Gmsh in
worker subprocesses) → quality checks and CEL assertions; the bad inputs of issue 4; and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.outcomes import assert_each_fails_naming_the_file, errors
from validibot_pipelines.storage import get_store

CYLINDER_SPEC = """\
quality: {sicn_min: 0.35}
assertions:
  - {name: no_slivers, expr: "o.sicn_min > 0.2"}
  - {name: decent_average, expr: "o.sicn_avg > 0.5 && o.gamma_avg > 0.5 && o.gamma_min > 0.1"}
  - {name: bounded_size, expr: "o.total_elements < 200000 && o.total_nodes > 100"}
  - {name: strategy_named, expr: "o.strategy != ''"}
"""


def _read_json(uri: str) -> dict:
    return json.loads(get_store(uri).read_bytes(uri))


def _msh_counts(uri: str) -> tuple[int, int, int]:
    """(nodes, tetrahedra, boundary triangles) counted in the blocks of a Gmsh 4.1 ASCII file, read as text."""
    lines = get_store(uri).read_bytes(uri).decode().splitlines()
    nodes = int(lines[lines.index("$Nodes") + 1].split()[1])
    at = lines.index("$Elements") + 2
    counts = {2: 0, 3: 0}
    while lines[at] != "$EndElements":
        dim, _tag, etype, n = map(int, lines[at].split())
        assert (dim, etype) in {(2, 2), (3, 4)}, lines[at]  # 3-node triangles and 4-node tetrahedra only
        counts[dim] += n
        at += n + 1
    return nodes, counts[3], counts[2]


def _physical_names(uri: str) -> set[tuple[int, str]]:
    """(dimension, name) of each physical group in a Gmsh ASCII file's ``$PhysicalNames`` block."""
    lines = get_store(uri).read_bytes(uri).decode().splitlines()
    if "$PhysicalNames" not in lines:
        return set()
    at = lines.index("$PhysicalNames")
    rows = [line.split(maxsplit=2) for line in lines[at + 2: at + 2 + int(lines[at + 1])]]
    return {(int(dim), name.strip('"')) for dim, _tag, name in rows}


CHECKS = ("intake_accepted", "preview_succeeded", "mesh_produced", "quality_targets_met", "cel_assertions")


def test_parts_are_meshed_through_dagster(pipeline, cad_parts):  # noqa: ANN001
    box = pipeline.drop(cad_parts["box"])
    cylinder = pipeline.drop(cad_parts["cylinder_with_hole"], spec=CYLINDER_SPEC)
    assembly = pipeline.drop(cad_parts["two_volume_assembly"],
                             spec="quality: {sicn_min: 0.2}\nassertions:\n  - {name: two, expr: 'o.total_nodes > 0'}\n")

    outcomes = {o.source_uri: o for o in pipeline.tick()}

    assert set(outcomes) == {box, cylinder, assembly}
    assert set(pipeline.instance.get_dynamic_partitions("cad_parts")) == {o.partition_key for o in outcomes.values()}
    for uri, o in outcomes.items():
        assert o.success, (uri, errors(o, "volume_mesh"))
        for check in CHECKS:
            assert o.checks[check][0], (uri, check, o.checks[check])
        result = o.outputs["volume_mesh"]["outputs"]
        # The merged .msh holds exactly the nodes and tetrahedra the metrics report, plus a boundary surface.
        nodes, tets, triangles = _msh_counts(result["msh_uri"])
        assert (nodes, tets) == (result["total_nodes"], result["total_elements"]) and triangles > 0
        quality = _read_json(result["quality_uri"])
        assert sum(quality["histograms"]["sicn"]) == result["total_elements"]
        assert quality["sicn"]["min"] == result["sicn_min"] > 0
        summary = _read_json(result["result_uri"])
        assert summary["strategy"] == result["strategy"] and summary["timings"]
        assert all(t["seconds"] >= 0 for t in summary["timings"])
    assert outcomes[cylinder].checks["cel_assertions"] == (True, "4/4 assertions passed")

    # Box preview: a closed triangle surface whose bounding box is the 40 x 20 x 10 box.
    preview = outcomes[box].outputs["preview_mesh"]["outputs"]
    doc = _read_json(preview["preview_uri"])
    assert set(doc) == {"vertices", "triangles", "bbox"}
    assert len(doc["triangles"]) == preview["triangle_count"] > 12
    assert max(max(t) for t in doc["triangles"]) == len(doc["vertices"]) - 1
    assert doc["bbox"]["max"] == pytest.approx([40, 20, 10], abs=1e-3)
    assert doc["bbox"]["diagonal"] == pytest.approx((40**2 + 20**2 + 10**2) ** 0.5, rel=1e-6)

    # Cylinder: the first strategies miss sicn_min 0.35, the search falls through and stops at the first hit.
    attempts = outcomes[cylinder].outputs["volume_mesh"]["outputs"]["attempts"]
    outcomes_seen = [a["outcome"] for a in attempts]
    first_hit = outcomes_seen.index("met_targets")
    assert all(x == "skipped" for x in outcomes_seen[first_hit + 1:]) and outcomes_seen[first_hit + 1:]
    assert outcomes[cylinder].outputs["volume_mesh"]["outputs"]["sicn_min"] >= 0.35

    # Assembly: two volumes meshed separately (fan-out) and merged; totals are the sum of the volumes.
    asm = outcomes[assembly].outputs["volume_mesh"]["outputs"]
    assert [v["volume"] for v in asm["volumes"]] == [1, 2]
    assert asm["total_elements"] == sum(v["quality"]["elements"] for v in asm["volumes"])
    assert asm["total_nodes"] == sum(v["quality"]["nodes"] for v in asm["volumes"])
    assert outcomes[assembly].outputs["preview_mesh"]["outputs"]["volumes"] == 2
    # Each volume and its boundary is a named physical group (what a solver addresses); every element is in one.
    assert _physical_names(asm["msh_uri"]) == {(3, "volume_1"), (3, "volume_2"), (2, "boundary_1"),
                                                (2, "boundary_2")}
    nodes, tets, _ = _msh_counts(asm["msh_uri"])
    assert (nodes, tets) == (asm["total_nodes"], asm["total_elements"])


def test_metrics_and_artifacts_in_metadata(pipeline, cad_parts):  # noqa: ANN001
    from dagster import AssetKey, AssetRecordsFilter

    pipeline.drop(cad_parts["box"])
    (o,) = pipeline.tick()

    def latest(asset: str):  # noqa: ANN202
        return pipeline.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[o.partition_key]),
            limit=1).records[0].asset_materialization

    meta = latest("volume_mesh").metadata
    metrics = {r.data["metric"]: r.data for r in meta["metrics"].records}
    assert {"sicn_min", "sicn_avg", "gamma_min", "gamma_avg", "total_elements", "total_nodes", "strategy"} <= set(
        metrics)
    # numbers stay numbers (the UI sorts them), text values are kept in their own column
    assert metrics["total_elements"]["value"] == meta["total_elements"].value and metrics["sicn_min"]["value"] > 0
    assert metrics["strategy"]["value"] is None and metrics["strategy"]["text"] == meta["strategy"].value
    assert meta["msh_uri"].value.endswith("box.msh")
    assert meta["result_uri"].value.endswith("box_result.json")
    assert meta["quality_uri"].value.endswith("box.quality.json")
    assert {r.data["strategy"] for r in meta["attempts"].records} >= {"delaunay_coarse"}
    preview = latest("preview_mesh").metadata
    assert preview["preview_uri"].value.endswith("box.preview.json")
    assert "data:image/png;base64," in preview["preview"].value


def test_stl_part(pipeline, cad_parts):  # noqa: ANN001
    pipeline.drop(cad_parts["box_stl"])
    (o,) = pipeline.tick()
    assert o.success, errors(o, "volume_mesh")
    assert o.outputs["cad_file"]["facts"]["format"] == "stl-ascii"
    assert o.outputs["volume_mesh"]["outputs"]["total_elements"] > 100


def test_strategy_timeout_falls_through_to_the_next(pipeline, cad_parts):  # noqa: ANN001
    # 0.2 % of the diagonal would need tens of millions of tetrahedra: it cannot finish in one second.
    spec = ("meshing:\n  strategies:\n"
            "    - {name: far_too_fine, algorithm_3d: 1, size_factor: 0.002, timeout_seconds: 1}\n"
            "    - {name: coarse, algorithm_3d: 1, size_factor: 0.1}\n")
    pipeline.drop(cad_parts["cylinder_with_hole"], spec=spec)
    (o,) = pipeline.tick()
    assert o.success, errors(o, "volume_mesh")
    result = o.outputs["volume_mesh"]["outputs"]
    assert [(a["strategy"], a["outcome"]) for a in result["attempts"]] == [("far_too_fine", "timeout"),
                                                                            ("coarse", "met_targets")]
    assert result["strategy"] == "coarse"


def test_bad_cad_inputs(pipeline, cad_parts, tmp_path):  # noqa: ANN001
    not_step = tmp_path / "photo.step"
    not_step.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    truncated = tmp_path / "truncated.step"
    data = cad_parts["box"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases = {
        pipeline.drop(not_step): ("cad_file", "MESH_NOT_STEP"),
        pipeline.drop(truncated): ("cad_file", "MESH_STEP_TRUNCATED"),
        pipeline.drop(cad_parts["empty"]): ("preview_mesh", "MESH_EMPTY_GEOMETRY"),
        pipeline.drop(cad_parts["surface_only"]): ("volume_mesh", "MESH_NO_SOLIDS"),
        pipeline.drop(cad_parts["cylinder_with_hole"], name="unmeshable.step",
                      spec="meshing: {max_elements: 50}\n"): ("volume_mesh", "MESH_NO_STRATEGY_SUCCEEDED"),
        pipeline.drop(cad_parts["box"], name="too_demanding.step",
                      spec="quality: {sicn_min: 0.95}\nmeshing:\n  strategies: [{name: only_one}]\n"):
            ("volume_mesh", "MESH_QUALITY_TARGETS_NOT_MET"),
    }
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert_each_fails_naming_the_file(outcomes, cases)
    by_code = {code: outcomes[uri] for uri, (_, code) in cases.items()}
    assert "volume_mesh" not in by_code["MESH_EMPTY_GEOMETRY"].outputs  # blocked by preview_succeeded
    assert by_code["MESH_EMPTY_GEOMETRY"].checks["preview_succeeded"][0] is False
    unmeshable = by_code["MESH_NO_STRATEGY_SUCCEEDED"]
    assert unmeshable.checks["mesh_produced"][0] is False
    assert "too_many_elements" in errors(unmeshable, "volume_mesh")
    assert "> max_elements 50" in errors(unmeshable, "volume_mesh")
    sheet = by_code["MESH_NO_SOLIDS"]
    assert sheet.checks["preview_succeeded"][0] is True  # the sheet itself previews fine…
    assert [m["code"] for m in sheet.outputs["preview_mesh"]["messages"]] == ["MESH_NO_SOLIDS"]  # …with a warning
    assert sheet.outputs["preview_mesh"]["outputs"]["volumes"] == 0
    demanding = by_code["MESH_QUALITY_TARGETS_NOT_MET"]
    assert demanding.checks["mesh_produced"][0] is True  # the best mesh is still there to inspect
    assert demanding.checks["quality_targets_met"][0] is False
    # a mesh below target is still judged by the assertions; no mesh at all cannot be
    assert not demanding.checks["cel_assertions"][1].startswith("not evaluated"), demanding.checks
    assert unmeshable.checks["cel_assertions"] == (False, "not evaluated: the worker ended failed_validation")
    assert get_store(demanding.outputs["volume_mesh"]["outputs"]["msh_uri"]).exists(
        demanding.outputs["volume_mesh"]["outputs"]["msh_uri"])


def test_cli_validates_a_step_part(cad_parts, tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("quality: {sicn_min: 0.2}\nassertions:\n"
                    "  - {name: sicn, expr: 'o.sicn_min > 0.2'}\n  - {name: tiny, expr: 'o.total_elements < 10'}\n")
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(cad_parts["box"]),
                           "--spec", str(spec), "--json", "--store", (tmp_path / "store").as_uri()],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # 'tiny' is deliberately impossible
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    assert [a["passed"] for a in out["outputs"]["assertions"]] == [True, False]
    assert out["outputs"]["preview"]["volumes"] == 1
    assert out["outputs"]["total_elements"] > 10
    assert any(m["code"] == "ASSERTION_FAILED" for m in out["messages"])


def test_step_dropped_into_an_s3_landing_zone(s3_bucket, cad_parts, tmp_path):  # noqa: ANN001
    """Landing zone and store on S3 (moto): the sensor lists the bucket, the worker reads and writes s3://."""
    from dagster import instance_for_test

    from tests.conftest import Pipeline

    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        s3 = Pipeline(instance, f"{s3_bucket}/landing", f"{s3_bucket}/store")
        uri = s3.drop(cad_parts["box"], spec="quality: {sicn_min: 0.2}\n")
        (o,) = s3.tick()
    assert o.source_uri == uri and o.success, errors(o, "volume_mesh")
    result = o.outputs["volume_mesh"]["outputs"]
    assert result["msh_uri"].startswith(f"{s3_bucket}/store/runs/")
    assert _msh_counts(result["msh_uri"])[:2] == (result["total_nodes"], result["total_elements"])
