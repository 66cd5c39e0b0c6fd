"""Control-plane steps shared by the Dagster assets and the ``validibot validate`` CLI.

Plain functions (no Dagster objects required) so one code path serves both; the assets add metadata,
partitions and checks around them.
"""
