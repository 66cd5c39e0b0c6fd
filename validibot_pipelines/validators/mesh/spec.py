"""What a CAD part's spec may say: quality targets, meshing options and assertions."""

from __future__ import annotations

from typing import Any

from validibot_pipelines.validators.mesh.envelopes import MeshingOptions, PreviewOptions, QualityTargets

TITLE = "CAD (meshing)"
SPEC_KEYS = ("quality", "meshing", "preview", "assertions")
SPEC_FIELDS: dict[str, tuple[Any, Any]] = {
    "quality": (QualityTargets | None, None),
    "meshing": (MeshingOptions | None, None),
    "preview": (PreviewOptions | None, None),
}
