"""``validibot validators``: what is registered, and what worker images declare in their metadata label."""

from __future__ import annotations

import json
import sys
from typing import Any

from validibot_pipelines.validators import METADATA_LABEL
from validibot_pipelines.validators.registry import metadata, validators


def registered() -> list[dict[str, Any]]:
    return [metadata(v) | {"title": v.title, "job": v.job_name, "intake_asset": v.intake_asset}
            for v in validators()]


def print_registered(as_json: bool = False) -> int:
    rows = registered()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<11} {row['title']:<14} {' '.join(row['file_types']):<22} job {row['job']:<22} "
              f"code {row['code_version']}")
    return 0


def print_label(name: str) -> int:
    """The ``org.validibot.validator.metadata`` label of ``name``'s worker image, as one line of JSON."""
    from validibot_pipelines.validators.registry import get

    try:
        validator = get(name)
    except KeyError as exc:
        print(f"validibot: {exc.args[0]}", file=sys.stderr)
        return 2
    print(json.dumps(metadata(validator), separators=(",", ":"), sort_keys=True))
    return 0


def configured_images() -> list[str]:
    """Each validator's Docker image as configured (``VALIDIBOT_<V>_DOCKER_IMAGE`` or the default name)."""
    from validibot_pipelines.resources.backends.select import docker_image

    return [docker_image(v.name) for v in validators()]


def image_metadata(images: list[str], docker_host: str | None = None) -> list[dict[str, Any]]:
    """The metadata label of each image, or why it could not be read (not built, no label, bad JSON)."""
    import docker
    import docker.errors

    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    rows: list[dict[str, Any]] = []
    for image in images:
        try:
            labels = client.images.get(image).labels or {}
        except docker.errors.ImageNotFound:
            rows.append({"image": image, "problem": "not built (see containers/Dockerfile)"})
            continue
        raw = labels.get(METADATA_LABEL)
        if raw is None:
            rows.append({"image": image,
                         "problem": f"no {METADATA_LABEL} label; rebuild it with containers/build <validator>"})
            continue
        try:
            rows.append({"image": image, **json.loads(raw)})
        except ValueError:
            rows.append({"image": image, "problem": f"{METADATA_LABEL} is not JSON: {raw[:200]!r}"})
    return rows


def print_images(images: list[str], docker_host: str | None = None) -> int:
    import docker.errors

    try:
        rows = image_metadata(images or configured_images(), docker_host)
    except docker.errors.DockerException as exc:
        print(f"validibot: cannot reach the container engine ({exc}); start Docker or pass --docker-host / set "
              "DOCKER_HOST", file=sys.stderr)
        return 2
    for row in rows:
        if "problem" in row:
            print(f"{row['image']}: {row['problem']}")
        else:
            print(f"{row['image']}: validator {row['name']} {row['version']} ({' '.join(row['file_types'])}), "
                  f"code {row['code_version']}")
    return 0
