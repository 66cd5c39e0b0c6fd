"""Dagster assets, one module per validator; checks.py holds what their checks share."""
