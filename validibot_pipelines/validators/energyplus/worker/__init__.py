"""EnergyPlus worker side: locate the engine, run a normalised copy of the model, read its results.

Everything here runs inside the worker container, so nothing imports dagster (worker start-up time and image size
matter) and result reading uses only :mod:`sqlite3` and pyarrow, never pandas.
"""

RUNNERS = {"energyplus": "validibot_pipelines.validators.energyplus.worker.simulate:run"}
MODAL_FUNCTIONS = {"energyplus": "run_energyplus_simulation"}
#: No warm-sandbox module: EnergyPlus runs as its own sandboxed process.
SANDBOXED: tuple[str, ...] = ()
