"""One dynamic partition per uploaded STEP / STL part, keyed by the SHA-256 of its bytes."""

from dagster import DynamicPartitionsDefinition

mesh_partitions = DynamicPartitionsDefinition(name="cad_parts")
