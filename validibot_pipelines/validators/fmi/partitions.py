"""One dynamic partition per uploaded FMU, keyed by the SHA-256 of its bytes (hex, no commas)."""

from dagster import DynamicPartitionsDefinition

fmu_partitions = DynamicPartitionsDefinition(name="fmu_models")
