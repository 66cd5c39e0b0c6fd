"""Meshing worker: Gmsh preview (surface) and quality-scored volume meshes of STEP / STL parts.

Gmsh (and OpenCASCADE's STEP reader inside it) only ever runs in throw-away child processes
(:mod:`~validibot_pipelines.validators.mesh.worker.child`), one per preview, per volume-and-strategy candidate and
per merge, each under a timeout: a CAD file that crashes or hangs the kernel takes down one child, not the worker.
"""

RUNNERS = {
    "mesh-preview": "validibot_pipelines.validators.mesh.worker.preview:run",
    "mesh": "validibot_pipelines.validators.mesh.worker.volume:run",
}
MODAL_FUNCTIONS = {"mesh-preview": "run_mesh_preview", "mesh": "run_mesh"}
