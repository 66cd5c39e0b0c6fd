"""Sample inputs for the pipelines: FMI 2.0 Co-Simulation FMUs built from C sources committed in ``fmus/``.

The FMUs are built on demand (``python -m validibot_pipelines.validators.fmi.samples.build``) instead of committing
binaries, so the repository holds only reviewable sources and every binary matches the platform that runs it.
"""
