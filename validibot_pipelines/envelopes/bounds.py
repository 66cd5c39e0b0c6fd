"""Keep every output envelope small, whatever the model printed or how many problems it has.

A model controls much of what ends up in its output envelope: its log lines, its crash messages, the
number of variables a spec names wrongly. Without bounds one model made a 10.5 MB envelope from one stderr
line and a 12 MB one from 60,000 ``SPEC_UNKNOWN_VARIABLE`` messages — too big for the Dagster UI, the
event log and every reader downstream. :func:`bound_output` is applied by the worker just before it writes
the envelope (and by the control plane to anything it reads back), so the limits hold on every backend.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from validibot_pipelines.envelopes.base import OutputEnvelope, Severity, Status, ValidationMessage

MAX_TEXT_CHARS = 4096  # one message's text: enough for file, problem, fix and a tail of the tool's words
MAX_PER_CODE = 20  # messages kept per code; the rest are counted in one summary message
MAX_METRICS = 2000
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_LOG_LINE_CHARS = 1000


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out (head kept: it names the problem)."""
    if len(text) <= limit:
        return text
    note = f" … ({len(text) - limit:,} more characters)"
    return text[: max(0, limit - len(note))] + note


def clip_tail(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """The last ``limit`` characters of ``text`` (a log's end is where the reason for a failure is)."""
    if len(text) <= limit:
        return text
    note = f"({len(text) - limit:,} earlier characters left out) … "
    return note + text[-max(0, limit - len(note)):]


def bound_messages(messages: list[ValidationMessage]) -> list[ValidationMessage]:
    """Texts clipped; beyond :data:`MAX_PER_CODE` messages of one code, one summary of how many more."""
    seen: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    first_extra: dict[str, ValidationMessage] = {}
    kept: list[ValidationMessage] = []
    for message in messages:
        seen[message.code] += 1
        if seen[message.code] > MAX_PER_CODE:
            extra[message.code] += 1
            first_extra.setdefault(message.code, message)
            continue
        kept.append(message.model_copy(update={"text": clip(message.text),
                                                "location": clip(message.location, 200) if message.location
                                                else message.location}))
    for code, count in extra.items():
        sample = first_extra[code]
        kept.append(ValidationMessage(
            severity=sample.severity, code=code, location=sample.location,
            text=f"… and {count:,} more {code} messages like the {MAX_PER_CODE} above (not listed)"))
    return kept


def _clip_value(value: Any, depth: int = 0) -> Any:
    """Strings in the typed outputs clipped, long lists of strings (logs) cut to their tail."""
    if isinstance(value, str):
        return clip(value, MAX_TEXT_CHARS * 4)
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            lines = [clip(v, MAX_LOG_LINE_CHARS) for v in value[-200:]]
            return ([f"({len(value) - 200:,} earlier lines left out)"] if len(value) > 200 else []) + lines
        return [_clip_value(v, depth + 1) for v in value]
    if isinstance(value, dict) and depth < 8:
        return {k: _clip_value(v, depth + 1) for k, v in value.items()}
    return value


def bound_output(output: OutputEnvelope) -> OutputEnvelope:
    """The envelope with every part bounded; over :data:`MAX_ENVELOPE_BYTES` the typed outputs are dropped.

    Dropping is the model's fault (it produced more than a result may hold): ``failed_validation`` with a
    message saying how big it was and what to ask for instead.
    """
    bounded = output.model_copy(update={
        "messages": bound_messages(output.messages),
        "metrics": output.metrics[:MAX_METRICS],
        "outputs": _clip_value(output.outputs),
    })
    if len(output.metrics) > MAX_METRICS:
        bounded.messages.append(ValidationMessage(
            severity=Severity.WARNING, code="METRICS_TRUNCATED",
            text=f"{len(output.metrics):,} metrics; only the first {MAX_METRICS:,} are kept — name fewer "
                 "output_variables in the spec"))
    size = len(bounded.model_dump_json().encode())
    if size > MAX_ENVELOPE_BYTES:
        bounded.outputs = {}
        bounded.metrics = bounded.metrics[:100]
        bounded.messages = bounded.messages[:200]
        if bounded.status == Status.SUCCESS:
            bounded.status = Status.FAILED_VALIDATION
        bounded.error("ENVELOPE_TOO_LARGE", f"the result was {size / 1e6:.1f} MB, over the "
                      f"{MAX_ENVELOPE_BYTES // (1024 * 1024)} MiB limit of an output envelope, so its outputs "
                      "were dropped; name fewer output_variables in the spec (full results are in the artifacts)")
    return bounded

