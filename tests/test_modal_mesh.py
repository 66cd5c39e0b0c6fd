"""The Modal meshing function bodies, run for real with ``.local()`` (the Modal cloud is unreachable here):
real Gmsh on a part read from a moto S3 server with boto3, results written back to S3."""

from __future__ import annotations

import json

import boto3

from validibot_pipelines.storage import get_store


def _put(bucket_uri: str, key: str, path) -> str:  # noqa: ANN001
    bucket = bucket_uri.removeprefix("s3://")
    boto3.client("s3").upload_file(str(path), bucket, key)
    return bucket


def test_generate_preview_mesh_local(s3_bucket: str, cad_parts) -> None:  # noqa: ANN001
    from validibot_pipelines.validators.mesh.modal_app import generate_preview_mesh

    bucket = _put(s3_bucket, "parts/box.step", cad_parts["box"])
    result = generate_preview_mesh.local(bucket, "parts/box.step")
    assert result["status"] == "success", result
    assert result["preview_uri"] == f"s3://{bucket}/parts/box.step.mesh/box.preview.json"
    doc = json.loads(get_store(result["preview_uri"]).read_bytes(result["preview_uri"]))
    assert len(doc["triangles"]) == result["triangle_count"] > 12
    assert doc["bbox"]["max"][0] > 39.9


def test_generate_mesh_local_meets_targets_and_writes_s3(s3_bucket: str, cad_parts) -> None:  # noqa: ANN001
    from validibot_pipelines.validators.mesh.modal_app import generate_mesh

    bucket = _put(s3_bucket, "parts/assembly.step", cad_parts["two_volume_assembly"])
    result = generate_mesh.local(bucket, "parts/assembly.step", {"sicn_min": 0.2, "meshing": {"parallel_volumes": 2}})
    assert result["status"] == "success", result
    assert result["targets_met"] and result["sicn_min"] >= 0.2
    assert len(result["volumes"]) == 2
    for key in ("msh_uri", "result_uri", "quality_uri"):
        assert result[key].startswith(f"s3://{bucket}/parts/assembly.step.mesh/")
        assert get_store(result[key]).exists(result[key]), key
    names = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"parts/assembly.step.mesh/assembly.msh", "parts/assembly.step.mesh/assembly_result.json",
            "parts/assembly.step.mesh/assembly.quality.json"} <= names


def test_generate_mesh_local_reports_bad_requests(s3_bucket: str, cad_parts) -> None:  # noqa: ANN001
    from validibot_pipelines.validators.mesh.modal_app import generate_mesh, generate_preview_mesh

    bucket = _put(s3_bucket, "parts/empty.step", cad_parts["empty"])
    assert generate_preview_mesh.local(bucket, "parts/empty.step")["code"] == "MESH_EMPTY_GEOMETRY"
    assert generate_mesh.local(bucket, "parts/empty.step", {})["code"] == "MESH_NO_SOLIDS"
    bad = generate_mesh.local(bucket, "parts/empty.step", {"sicn_minimum": 0.2})
    assert bad["status"] == "failed_validation" and "sicn_minimum" in bad["message"]


def test_a_missing_part_is_a_clear_bad_request(s3_bucket: str) -> None:
    from validibot_pipelines.validators.mesh.modal_app import generate_mesh, generate_preview_mesh

    bucket = s3_bucket.removeprefix("s3://")
    for answer in (generate_preview_mesh.local(bucket, "parts/absent.step"),
                   generate_mesh.local(bucket, "parts/absent.step", {})):
        assert answer["status"] == "failed_validation" and answer["code"] == "MESH_BAD_REQUEST"
        assert "parts/absent.step does not exist" in answer["message"]
