"""Many models' steps, one worker launch: gather the launches of a batch and hand them to the backend at once.

Each validator's launch functions (``validators/<v>/launch.py``) are written for one model: write its input
envelope, ``backend.launch(input_uri)``, read its output. :func:`together` runs those functions for every model
of a batch side by side (one thread each, mostly asleep) with a :class:`Gatherer` standing in for the backend:
a model's ``launch`` call waits until every model of the batch has either asked to launch or finished without
launching (replayed, rejected in the control plane, blocked), and then all waiting envelopes go to the real
backend's ``launch_batch`` in one go. A model whose flow launches twice (the CLI: probe, then simulation) joins
the next round, so a batch of 40 FMUs is two worker launches, not 80. Everything else about a model — its
bundle, output envelope, replay index, metadata and checks — stays exactly what a single launch gives it.

The models' CEL assertions gather the same way (:meth:`Gatherer.evaluate`, through
:func:`~validibot_pipelines.assertions.cel.gathered`): a round's waiting models have theirs evaluated in one
forked child (``cel.evaluate_together``), not one fork of the control plane each.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from validibot_pipelines.resources.backends.base import LaunchRecord

T = TypeVar("T")
R = TypeVar("R")


class Gatherer:
    """A backend for the models of one batch: ``launch`` parks the call until the round is complete."""

    def __init__(self, backend: Any, participants: int, context: Any = None) -> None:
        self.backend = backend
        self.context = context
        self.launches = 0  # worker launches made (rounds), for the step's log
        self._active = participants
        self._waiting: list[dict[str, Any]] = []
        self._evaluating: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        return self._park(self._waiting, {"input_uri": input_uri, "run_id": run_id, "timeout": timeout_seconds})

    def evaluate(self, jobs: list[Any]) -> dict[int, dict[str, Any]]:
        """A model's prepared CEL assertions (``cel._Job``), evaluated with the round's others in one child."""
        return self._park(self._evaluating, {"jobs": jobs})

    def done(self) -> None:
        """A participant finished (whatever it did): it will not launch again in this batch."""
        with self._cond:
            self._active -= 1
            self._flush_if_complete()

    def _park(self, queue: list[dict[str, Any]], slot: dict[str, Any]) -> Any:
        """Wait in ``queue`` until the round is complete and ``slot`` has its result; raise it if it failed."""
        with self._cond:
            queue.append(slot)
            self._flush_if_complete()
            while "result" not in slot:
                self._cond.wait()
        if isinstance(slot["result"], BaseException):
            raise slot["result"]
        return slot["result"]

    def _flush_if_complete(self) -> None:
        """With the lock held: when every active participant waits, evaluate the waiting assertions and launch
        the round (in this thread)."""
        if not (self._waiting or self._evaluating) or len(self._waiting) + len(self._evaluating) < self._active:
            return
        if self._evaluating:
            from validibot_pipelines.assertions.cel import evaluate_together

            evaluating, self._evaluating = self._evaluating, []
            self._settle(evaluating, lambda: evaluate_together([slot["jobs"] for slot in evaluating]))
        if self._waiting:
            round_, self._waiting = self._waiting, []
            self.launches += 1
            self._settle(round_, lambda: launch_batch(
                self.backend, [s["input_uri"] for s in round_], run_ids=[s["run_id"] for s in round_],
                timeout_seconds=max(s["timeout"] for s in round_), context=self.context))

    def _settle(self, slots: list[dict[str, Any]], results: Callable[[], list[Any]]) -> None:
        """Give each slot its result from ``results()`` (one per slot, in order) and wake the waiting models."""
        try:
            got: list[Any] = results()
        except BaseException as exc:  # noqa: BLE001 - every waiting model gets the failure, none hangs
            got = [exc] * len(slots)
        for slot, result in zip(slots, got, strict=True):
            slot["result"] = result
        self._cond.notify_all()


def launch_batch(backend: Any, input_uris: list[str], *, run_ids: list[str], timeout_seconds: float,
                 context: Any = None) -> list[LaunchRecord]:
    """One launch for ``input_uris`` when the backend can batch (every built-in one can), else one each.

    The CEL parser starts building here (``warm_up``), while the control plane waits for the worker: not
    earlier, where its 0.3 s of CPU would hold the GIL against the intake threads of ``validibot validate``."""
    from validibot_pipelines.assertions.cel import warm_up

    warm_up()
    if len(input_uris) > 1 and hasattr(backend, "launch_batch"):
        batch_id = f"{run_ids[0]}-x{len(input_uris)}-{uuid.uuid4().hex[:8]}"
        return backend.launch_batch(input_uris, batch_id=batch_id, timeout_seconds=timeout_seconds,
                                    context=context)
    return [backend.launch(uri, run_id=run_id, timeout_seconds=timeout_seconds, context=context)
            for uri, run_id in zip(input_uris, run_ids, strict=True)]


def together(items: Sequence[T], work: Callable[[T, Any], R], backend: Any, context: Any = None) -> list[R]:
    """``work(item, backend)`` for every item at once, their launches gathered into shared worker launches.

    Results come back in the order of ``items``; an exception of one item is re-raised after all have ended.
    """
    if len(items) <= 1:
        return [work(item, backend) for item in items]
    gatherer = Gatherer(backend, len(items), context)

    def one(item: T) -> R:
        from validibot_pipelines.assertions.cel import gathered

        try:
            with gathered(gatherer.evaluate):
                return work(item, gatherer)
        finally:
            gatherer.done()

    with ThreadPoolExecutor(len(items), thread_name_prefix="validibot-batch") as pool:
        futures = [pool.submit(one, item) for item in items]
        return [f.result() for f in futures]
