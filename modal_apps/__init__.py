"""Modal apps: deploy with ``modal deploy -m modal_apps.<name>``. Each function runs the same worker code
(:mod:`validibot_pipelines.runtime`) as every other backend, under the same container contract."""
