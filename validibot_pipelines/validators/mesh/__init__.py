"""The meshing validator: STEP / STL parts read by Gmsh/OpenCASCADE, previewed and volume-meshed.

Control plane: ``intake.py`` (ISO 10303-21 / STL structure checks), ``launch.py`` (preview and mesh launches,
CEL bindings), ``assets.py`` (Dagster assets and checks), ``validator.py`` (the registration). Worker side, no
``dagster``: ``worker/`` (Gmsh in throw-away sandboxed children), ``envelopes.py``; images: ``modal_app.py`` and
``image/``; demo parts: ``samples/``.
"""
