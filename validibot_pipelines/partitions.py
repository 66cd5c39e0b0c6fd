"""Dynamic partitions: one per uploaded model, keyed by the SHA-256 of its bytes (hex, no commas)."""

from dagster import DynamicPartitionsDefinition

fmu_partitions = DynamicPartitionsDefinition(name="fmu_models")
energyplus_partitions = DynamicPartitionsDefinition(name="energyplus_models")
mesh_partitions = DynamicPartitionsDefinition(name="cad_parts")

PARTITIONS_BY_KIND = {"fmi": fmu_partitions, "energyplus": energyplus_partitions, "mesh": mesh_partitions}
