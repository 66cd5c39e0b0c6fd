"""Worker side: everything that runs inside the isolated backend (subprocess, container, Modal, Cloud Run).

Reads the input envelope named by ``VALIDIBOT_INPUT_URI``, runs the validator, writes the output envelope to
the execution bundle. Imports fmpy/energyplus/gmsh tooling and ``dagster_pipes`` at most — never ``dagster``.
"""
