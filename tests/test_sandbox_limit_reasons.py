"""Which limit a failed sandboxed process hit, from what the sandbox could observe of it."""

import signal

from validibot_pipelines.envelopes.base import GIB, SandboxLimits
from validibot_pipelines.runtime.sandbox.limits import which_limit

LIMITS = SandboxLimits(memory_bytes=GIB)


def reason(signum: int | None, vm: int = 0, rss: int = 0, text: str = "") -> str | None:
    return which_limit(signum=signum, text=text, peak_vm_bytes=vm, cpu_used=0.1, limits=LIMITS, timeout=60,
                       pids_max_hit=False, peak_rss_bytes=rss)


def test_an_abort_after_filling_memory_between_two_samples_is_the_memory_limit():
    # sampled address space missed the peak, but resident memory (ru_maxrss, exact) reached 70 % of the limit
    assert reason(signal.SIGABRT, vm=200 * 1024**2, rss=int(0.7 * GIB)) == "memory"
    assert reason(signal.SIGSEGV, rss=int(0.6 * GIB)) == "memory"


def test_a_crash_of_a_small_model_is_not_blamed_on_memory():
    assert reason(signal.SIGABRT, vm=300 * 1024**2, rss=50 * 1024**2) is None
    assert reason(signal.SIGSEGV) is None


def test_a_clean_error_exit_needs_the_sampled_peak_or_the_words():
    assert reason(None, rss=int(0.7 * GIB)) is None
    assert reason(None, vm=int(0.95 * GIB)) == "memory"
    assert reason(None, text="MemoryError") == "memory"
