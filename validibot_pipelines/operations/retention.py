"""Retention: remove old execution bundles (``runs/<run_id>/``) from a store, never what is still needed.

Why this exists next to a bucket lifecycle rule (``deploy/gcs-lifecycle.json``): a lifecycle rule only sees
an object's age. It cannot know that a Cloud Run execution is still running, that an output landed but the
output sensor has not collected it yet, or that ``results/<identity>.json`` (the replay index) points into a
bundle — deleting that bundle would leave the index pointing at nothing. ``plan_prune`` reads the layout
(``orchestration/layout.py``) and keeps:

* every bundle younger than the age asked for (its age = the newest object in it, so artifacts written late
  count);
* a bundle whose asynchronous launch is **not collected**: its ``launches/<run_id>.json`` marker exists.
  The Cloud Run backend writes the marker before ``run_job`` and the output sensor deletes it only after it
  requested the run that reads the output (``sensors/outputs.py``), so a marker — whatever its age, with or
  without ``output.json`` — means the control plane has not read that bundle's result yet;
* a bundle with an input envelope but no ``output.json`` that is still within its envelope's
  ``timeout_seconds`` (+ a grace): a synchronous launch may still be writing it;
* the canonical model copies (``models/<sha256>/``), the catalog, the asset values and batch manifests:
  prune never lists or deletes anything outside ``runs/`` and ``results/``.

A bundle that is removed takes the replay-index entries pointing at it along (each entry is deleted *before*
the bundle, so a prune that dies half-way never leaves an entry for a missing bundle), and an entry that
already points at a bundle of this store that no longer exists is removed as well. With ``dry_run`` nothing
is deleted; the plan says what would be.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from validibot_pipelines.envelopes import load_input_envelope
from validibot_pipelines.envelopes.base import EnvelopeError
from validibot_pipelines.orchestration.layout import LAUNCHES_DIR, bundle_uri
from validibot_pipelines.storage import ObjectInfo, get_store, join_uri

#: Past an envelope's timeout, how long a bundle without output is still left alone (the backends' kill
#: grace and the time the step needs to read the result).
TIMEOUT_GRACE_SECONDS = 600
DEFAULT_TIMEOUT_SECONDS = 3600  # ExecutionContext.timeout_seconds' default, for an unreadable envelope
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w`` → a timedelta; ValueError saying the accepted form."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an age: use a number with a unit s, m, h, d or w (e.g. 30d, 12h)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class Bundle:
    """One execution bundle as listed: its objects and the facts the decision needs."""

    run_id: str
    uri: str
    objects: list[ObjectInfo] = field(default_factory=list)
    index_entries: list[str] = field(default_factory=list)  # results/<identity>.json pointing into it

    @property
    def newest_ns(self) -> int:
        return max((o.updated_ns for o in self.objects), default=0)

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    def has(self, name: str) -> bool:
        return any(o.uri == join_uri(self.uri, name) for o in self.objects)


@dataclass(frozen=True)
class Decision:
    bundle: Bundle
    remove: bool
    reason: str
    age_seconds: float


@dataclass
class PrunePlan:
    store_uri: str
    older_than: timedelta
    decisions: list[Decision]
    dangling_index: list[str]  # index entries whose bundle (in this store) is gone already

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if d.remove]

    @property
    def kept_protected(self) -> list[Decision]:
        """Old enough to go, but kept for a reason (not collected, maybe still running)."""
        return [d for d in self.decisions if not d.remove and d.age_seconds >= self.older_than.total_seconds()]


def _group_bundles(store_uri: str, objects: Iterable[ObjectInfo]) -> dict[str, Bundle]:
    runs = join_uri(store_uri, "runs") + "/"
    bundles: dict[str, Bundle] = {}
    for info in objects:
        if not info.uri.startswith(runs):
            continue
        run_id = info.uri[len(runs):].split("/", 1)[0]
        if run_id:
            bundles.setdefault(run_id, Bundle(run_id, bundle_uri(store_uri, run_id))).objects.append(info)
    return bundles


def _index_pointers(store_uri: str) -> dict[str, str]:
    """``results/<identity>.json`` URI → the bundle URI its ``output_uri`` lies in ('' when unreadable)."""
    results = join_uri(store_uri, "results")
    store = get_store(results)
    pointers: dict[str, str] = {}
    for info in store.list(results):
        if not info.uri.endswith(".json"):
            continue
        try:
            output_uri = str(json.loads(store.read_bytes(info.uri))["output_uri"])
        except (FileNotFoundError, KeyError, TypeError, ValueError):
            pointers[info.uri] = ""  # not ours to judge: an entry replay cannot use is left as it is
            continue
        pointers[info.uri] = output_uri.rsplit("/", 1)[0]
    return pointers


def _timeout_of(bundle: Bundle) -> int:
    input_uri = join_uri(bundle.uri, "input.json")
    try:
        envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
    except (FileNotFoundError, EnvelopeError, ValueError):
        return DEFAULT_TIMEOUT_SECONDS
    return envelope.context.timeout_seconds


def _decide(bundle: Bundle, pending: set[str], older_than: timedelta, now_ns: int) -> Decision:
    age = max(0.0, (now_ns - bundle.newest_ns) / 1e9)
    if age < older_than.total_seconds():
        return Decision(bundle, False, "younger than the age asked for", age)
    if bundle.run_id in pending:
        state = "its output landed but was" if bundle.has("output.json") else "the execution has"
        return Decision(bundle, False, f"{state} not been collected yet ({LAUNCHES_DIR}/{bundle.run_id}.json "
                                       "exists: the output sensor still has to read it)", age)
    if bundle.has("input.json") and not bundle.has("output.json"):
        limit = _timeout_of(bundle) + TIMEOUT_GRACE_SECONDS
        if age < limit:
            return Decision(bundle, False, f"no output.json yet and still within its timeout + grace "
                                           f"({limit:.0f}s): the worker may still be writing it", age)
    return Decision(bundle, True, "collected" if bundle.has("output.json") else "no output, past its timeout", age)


def plan_prune(store_uri: str, older_than: timedelta, *, now_ns: int | None = None) -> PrunePlan:
    """What a prune of ``store_uri`` would remove and keep (reads the store, deletes nothing)."""
    store_uri = store_uri.rstrip("/")
    now_ns = time.time_ns() if now_ns is None else now_ns
    runs = join_uri(store_uri, "runs")
    bundles = _group_bundles(store_uri, get_store(runs).list(runs))
    launches = join_uri(store_uri, LAUNCHES_DIR)
    pending = {info.uri.rsplit("/", 1)[1].removesuffix(".json") for info in get_store(launches).list(launches)
               if info.uri.endswith(".json")}
    dangling: list[str] = []
    runs_prefix = runs + "/"
    for entry, target in sorted(_index_pointers(store_uri).items()):
        run_id = target[len(runs_prefix):] if target.startswith(runs_prefix) else ""
        if run_id in bundles:
            bundles[run_id].index_entries.append(entry)
        elif run_id and "/" not in run_id:  # points at a bundle of this store that is gone: inconsistent
            dangling.append(entry)
    decisions = [_decide(b, pending, older_than, now_ns) for _, b in sorted(bundles.items())]
    return PrunePlan(store_uri, older_than, decisions, dangling)


def execute(plan: PrunePlan) -> list[str]:
    """Delete what ``plan`` removes: each bundle's index entries first, then its objects. Returns the URIs
    deleted. A bundle whose launch marker appeared since the plan was made (a retry) is left alone."""
    deleted: list[str] = []
    for entry in plan.dangling_index:
        get_store(entry).delete(entry)
        deleted.append(entry)
    for decision in plan.removed:
        bundle = decision.bundle
        marker = join_uri(plan.store_uri, LAUNCHES_DIR, f"{bundle.run_id}.json")
        if get_store(marker).exists(marker):
            continue
        for entry in bundle.index_entries:
            get_store(entry).delete(entry)
            deleted.append(entry)
        for info in bundle.objects:
            get_store(info.uri).delete(info.uri)
            deleted.append(info.uri)
        _remove_empty_folders(bundle.uri)
    return deleted


def _remove_empty_folders(uri: str) -> None:
    """Object stores have no folders; a ``file://`` store keeps the emptied ``runs/<run_id>/`` tree: drop it."""
    if not uri.startswith("file://"):
        return
    from validibot_pipelines.storage.local import uri_to_path

    root = uri_to_path(uri)
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def report_lines(plan: PrunePlan, *, dry_run: bool, deleted: Iterable[str] = ()) -> list[str]:
    """What ``validibot prune`` prints: one line per bundle removed (or that would be) or kept for a reason.

    ``deleted`` (what :func:`execute` returned) tells a bundle left alone at the last moment from one removed."""
    verb = "would remove" if dry_run else "removed"
    gone = set(deleted)
    lines = []
    for entry in plan.dangling_index:
        lines.append(f"{verb} {entry} (replay index entry for a bundle that no longer exists)")
    for d in plan.removed:
        if not dry_run and d.bundle.objects and d.bundle.objects[0].uri not in gone:
            lines.append(f"kept {d.bundle.uri}/: a launch marker appeared while pruning (a retried launch)")
            continue
        extra = "".join(f" + {e}" for e in d.bundle.index_entries)
        lines.append(f"{verb} {d.bundle.uri}/ ({len(d.bundle.objects)} objects, {_human_size(d.bundle.size)}, "
                     f"{d.age_seconds / 86400:.1f} days old, {d.reason}){extra}")
    for d in plan.kept_protected:
        lines.append(f"kept {d.bundle.uri}/ ({d.age_seconds / 86400:.1f} days old): {d.reason}")
    young = len(plan.decisions) - len(plan.removed) - len(plan.kept_protected)
    lines.append(f"{len(plan.removed)} bundle(s) {verb}, {len(plan.kept_protected)} kept (not collected or "
                 f"maybe still running), {young} younger than {plan.older_than}; models/ is never pruned")
    return lines
