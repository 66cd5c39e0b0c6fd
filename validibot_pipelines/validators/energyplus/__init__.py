"""The EnergyPlus validator: IDF / epJSON building models simulated with the EnergyPlus binary.

Control plane: ``intake.py`` (text, size and unsafe-object checks), ``launch.py`` (the simulation launch, CEL
bindings), ``assets.py`` (Dagster assets and checks), ``validator.py`` (the registration). Shared by both sides:
``idf.py`` (the IDF/epJSON reader), ``envelopes.py``. Worker side, no ``dagster``: ``worker/``; images:
``modal_app.py`` and ``image/``; demo models: ``samples/``.
"""
