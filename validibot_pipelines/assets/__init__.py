"""Dagster assets, one module per validator."""
