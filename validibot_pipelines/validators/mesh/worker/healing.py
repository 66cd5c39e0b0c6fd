"""Shape healing, tried once before giving up on a part that failed for its geometry.

OpenCASCADE's ``healShapes`` (sewing faces, making solids from closed shells, dropping degenerate edges and
faces) repairs some broken exports: a shell whose faces were never sewn becomes a solid; loose faces it leaves
without a solid are then closed as Gmsh itself does (:func:`~.geometry.close_shell`). It cannot repair
everything (two bodies crossing each other stay crossed), and a healed shape may differ from the one the user
drew, so healing is only tried when the part already failed, the search is run again on the healed part, and
an INFO note always says that it was tried and whether it helped. Plain Python: the sandboxed child does the
healing itself (``request["heal"]``, :func:`~validibot_pipelines.validators.mesh.worker.child.mesh`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.mesh.envelopes import StrategyAttempt
from validibot_pipelines.validators.mesh.worker.calls import MeshFailure
from validibot_pipelines.validators.mesh.worker.reasons import GEOMETRY, classify

CAD_SUFFIXES = {".step", ".stp"}  # what OpenCASCADE can heal; an STL is triangles only
Note = tuple[str, str]


def geometry_reason(failed: list[int], attempts: list[StrategyAttempt]) -> str | None:
    """Why healing is worth a try: the failed volumes' geometry reasons in words (None: none is geometric)."""
    codes = sorted({classify([a for a in attempts if a.volume == v]).code for v in failed} & set(GEOMETRY))
    return f"the part failed to mesh with {', '.join(codes)}" if codes else None


def heal(part: Path, name: str, why: str, search: Callable[[], Any]) -> tuple[Any | None, list[Note]]:
    """``search()`` runs the whole search on the healed part (raising :class:`MeshFailure` or returning an
    object whose ``failed`` lists the volumes that did not mesh). Returns that search when it meshed every
    volume (else None) and the INFO note saying that healing was tried (because ``why``) and whether it helped."""
    if part.suffix.lower() not in CAD_SUFFIXES:
        return None, [("MESH_HEALING_UNAVAILABLE", f"{name}: shape healing was not tried: OpenCASCADE heals CAD "
                       "solids, and an STL holds triangles only; repair the mesh in the tool that wrote it")]
    tried = f"{name}: shape healing (OpenCASCADE healShapes) was tried because {why}"
    try:
        healed = search()
    except MeshFailure as exc:
        return None, [("MESH_HEALING_DID_NOT_HELP", f"{tried}, and did not help: {exc.text}")]
    if healed.failed:
        return None, [("MESH_HEALING_DID_NOT_HELP", f"{tried}, and did not help: volume(s) "
                       f"{', '.join(map(str, healed.failed))} of the healed part still failed to mesh")]
    return healed, [("MESH_HEALED", f"{tried}, and it helped: the healed part ({len(healed.volumes)} volume(s)) "
                     "meshed; check that the healed shape is still the part you meant, and repair the original in "
                     "the CAD tool")]
