"""validibot-pipelines: Dagster pipelines that validate engineering models on isolated compute."""

__version__ = "0.1.0"
