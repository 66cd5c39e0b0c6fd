"""One dynamic partition per FMU, keyed by its landing path (orchestration/names.py); its versions are the
materializations of that partition (data version = the SHA-256 of the bytes)."""

from dagster import DynamicPartitionsDefinition

fmu_partitions = DynamicPartitionsDefinition(name="fmu_models")
