"""The FMI validator: FMUs (co-simulation and model exchange, FMI 2.0 and 3.0) probed and simulated with fmpy.

Control plane: ``intake.py`` (ZIP/XML checks), ``launch.py`` (probe and simulation launches, CEL bindings),
``assets.py`` (Dagster assets and checks), ``validator.py`` (the registration). Worker side, no ``dagster``:
``worker/`` (probe, simulation, the sandboxed child), ``envelopes.py`` (typed inputs/outputs, both sides),
``modal_app.py`` and ``image/`` (what its Docker/Cloud Run/Modal images install), ``samples/`` (demo FMUs).
"""
