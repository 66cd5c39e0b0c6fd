"""FMI worker: probe (model facts + fmpy validation) and simulation (fmpy in a child process)."""

RUNNERS = {
    "fmi-probe": "validibot_pipelines.validators.fmi.worker.probe:run",
    "fmi-simulation": "validibot_pipelines.validators.fmi.worker.simulate:run",
}
MODAL_FUNCTIONS = {"fmi-probe": "probe_fmu", "fmi-simulation": "run_fmi_simulation"}
#: The modules its runners fork in a warm sandbox (``run_python``): a worker session imports them ahead.
SANDBOXED = ("validibot_pipelines.validators.fmi.worker.child",)
#: Modules only the Dagster assets' launches use (the result plot, ``plot.py``): a run's worker session imports
#: them ahead (``runner_modules``); the command line never draws, so its worker does not.
FOR_ASSETS = ("validibot_pipelines.validators.fmi.worker.plot",)
