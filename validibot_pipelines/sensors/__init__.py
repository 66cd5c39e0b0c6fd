"""Dagster sensors, one module per trigger."""
