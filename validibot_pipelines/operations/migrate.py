"""``validibot migrate``: re-key an instance made by an older validibot, whose partitions were checksums.

Before models were partitions by name, each upload's SHA-256 was its partition and its intake record lived at
``models/<sha256>/model.json``. This one-off step, for each such partition of each validator: reads that record,
names the model by its path below the landing root (``orchestration/names.py``), writes the record (and its
spec) where records live now (``catalog/<model>.json``), registers the named partition with its version, and
removes the checksum partition. Materialization history stays on the old keys (Dagster cannot move it); the
named partitions show as missing, so the nightly re-validation (or ``validibot backfill --stale``) runs them
again. Idempotent: a second run finds nothing to do. Several checksums of one name (old versions) keep the
newest record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from validibot_pipelines.orchestration.layout import model_manifest_uri, model_spec_uri
from validibot_pipelines.orchestration.models import ModelRecord, save_record
from validibot_pipelines.orchestration.names import is_legacy_key, model_path, partition_key, relative_name
from validibot_pipelines.storage import get_store, join_uri

if TYPE_CHECKING:  # imported where used: the CLI's parser must not cost every command Dagster's import
    from dagster import DagsterInstance


@dataclass
class Migration:
    renamed: dict[str, str] = field(default_factory=dict)  # old checksum -> model key
    dropped: list[str] = field(default_factory=list)  # checksums without a record: nothing to re-key


def legacy_partitions(instance: DagsterInstance) -> dict[str, list[str]]:
    """{partitions definition name: its checksum keys} left by an older validibot."""
    from validibot_pipelines.validators.registry import validators

    found = {}
    for v in validators():
        keys = [k for k in instance.get_dynamic_partitions(v.partitions.name) if is_legacy_key(k)]
        if keys:
            found[v.partitions.name] = keys
    return found


def legacy_message(instance: DagsterInstance) -> str | None:
    """What to say when this instance still holds checksum partitions (``None``: it does not)."""
    found = legacy_partitions(instance)
    if not found:
        return None
    count = sum(len(keys) for keys in found.values())
    return (f"this Dagster instance holds {count} model partition(s) keyed by checksum, made by an older validibot "
            f"({', '.join(found)}); models are partitions by name now — run `validibot migrate` once to re-key them")


def migrate(instance: DagsterInstance, store_uri: str, landing_uri: str) -> Migration:
    from validibot_pipelines.sensors.uploads import version_observation
    from validibot_pipelines.validators.registry import validators

    done = Migration()
    for v in validators():
        legacy = [k for k in instance.get_dynamic_partitions(v.partitions.name) if is_legacy_key(k)]
        newest: dict[str, tuple[float, ModelRecord, bytes | None]] = {}
        for sha in legacy:
            old = join_uri(store_uri, "models", sha, "model.json")
            store = get_store(old)
            if not store.exists(old):
                done.dropped.append(sha)
                continue
            record = ModelRecord.model_validate(json.loads(store.read_bytes(old)))
            record.name = relative_name(landing_uri, record.source_uri) if record.source_uri else record.file_name
            spec_uri = join_uri(store_uri, "models", sha, "validation.yaml")
            spec = store.read_bytes(spec_uri) if record.spec is not None and store.exists(spec_uri) else None
            stamp = next((o.updated_ns for o in store.list(join_uri(store_uri, "models", sha)) if o.uri == old), 0)
            key = partition_key(record.name)
            if key not in newest or stamp >= newest[key][0]:
                newest[key] = (stamp, record, spec)
            done.renamed[sha] = key
        for key, (_, record, spec) in newest.items():
            if instance.has_dynamic_partition(v.partitions.name, key) or get_store(store_uri).exists(
                    model_manifest_uri(store_uri, key)):
                continue  # uploaded again under its name since the upgrade: that newer version stands
            save_record(record, store_uri)
            if spec is not None:
                target = model_spec_uri(store_uri, key)
                get_store(target).write_bytes(target, spec, "application/yaml")
            if not instance.has_dynamic_partition(v.partitions.name, key):
                instance.add_dynamic_partitions(v.partitions.name, [key])
            spec_sha = hashlib.sha256(spec).hexdigest() if spec is not None else None
            instance.report_runless_asset_event(version_observation(v.name, key, spec_sha, record.sha256))
        for sha in legacy:
            instance.delete_dynamic_partition(v.partitions.name, sha)
    return done


def run(_args: argparse.Namespace) -> int:
    """``validibot migrate`` (its parser: ``operations/cli.py``)."""
    from dagster import DagsterInstance

    from validibot_pipelines.resources.settings import ValidibotSettings

    settings = ValidibotSettings()
    try:
        instance = DagsterInstance.get()
    except Exception as exc:  # noqa: BLE001 - DAGSTER_HOME unset or unreadable: say which, no traceback
        print(f"validibot migrate: no Dagster instance ({exc}); set DAGSTER_HOME to the instance to migrate "
              "(the demo's: .validibot/dagster_home)")
        return 2
    done = migrate(instance, settings.store_uri, settings.landing_uri)
    for sha, key in done.renamed.items():
        print(f"  {sha[:12]}… → {model_path(key)}")
    for sha in done.dropped:
        print(f"  {sha[:12]}…: no intake record in {settings.store_uri}; partition removed — upload the file again")
    print(f"migrated {len(done.renamed)} checksum partition(s) to {len(set(done.renamed.values()))} model(s) by "
          f"name; {len(done.dropped)} removed without a record. Run `validibot backfill --stale --validator <name>` "
          "(or wait for the nightly job) to validate them under their names.")
    return 0
