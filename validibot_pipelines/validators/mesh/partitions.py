"""One dynamic partition per STEP / STL part, keyed by its landing path (orchestration/names.py); its versions
are the materializations of that partition (data version = the SHA-256 of the bytes)."""

from dagster import DynamicPartitionsDefinition

mesh_partitions = DynamicPartitionsDefinition(name="cad_parts")
