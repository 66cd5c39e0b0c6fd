"""XML validator, worker side: the trusted runner (``validate.py``) and the sandboxed lxml child (``child.py``).

Nothing here imports dagster or lxml at import time: the registry reads :data:`RUNNERS` from this module in
every worker image, and lxml is loaded only by the child, inside the sandbox.
"""

#: Validator type -> ``module:function`` runner, read by :mod:`validibot_pipelines.runtime.registry`.
RUNNERS: dict[str, str] = {"xml": "validibot_pipelines.validators.xml.worker.validate:run"}
#: Validator type -> the Modal function that runs it.
MODAL_FUNCTIONS: dict[str, str] = {"xml": "run_xml_validation"}
#: No warm-sandbox module: the lxml child runs as a cold sandboxed process (``run_untrusted``).
SANDBOXED: tuple[str, ...] = ()
