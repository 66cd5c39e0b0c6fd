"""Meshing worker: Gmsh preview (surface) and quality-scored volume meshes of STEP / STL parts.

Gmsh (and OpenCASCADE's STEP reader inside it) only ever runs in sandboxed children
(:mod:`~validibot_pipelines.validators.mesh.worker.child`): one per preview and one per volume mesh, which
imports the part once and forks one process per volume-and-strategy candidate and one for the merge
(:mod:`~validibot_pipelines.validators.mesh.worker.forks`), each under its own timeout: a candidate that
crashes or hangs the kernel takes down itself alone, a part whose import does takes down its one child — never
the worker. In a batch worker's lane the child is itself forked from a warm sandbox that has Gmsh imported.
"""

RUNNERS = {
    "mesh-preview": "validibot_pipelines.validators.mesh.worker.preview:run",
    "mesh": "validibot_pipelines.validators.mesh.worker.volume:run",
}
MODAL_FUNCTIONS = {"mesh-preview": "run_mesh_preview", "mesh": "run_mesh"}
#: The modules its runners fork in a warm sandbox (``run_python``): a worker session imports them ahead.
SANDBOXED = ("validibot_pipelines.validators.mesh.worker.child",)
