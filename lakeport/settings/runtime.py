"""Process-level set-up: memory tuning applied at the edge (the CLI) before worker threads start,
and the garbage collector and stop signals around a long-running loop."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_M_ARENA_MAX = -8


def tune_memory(*, arenas: int = 2) -> None:
    """Keep RSS flat under load: few glibc malloc arenas (delta-rs, librdkafka and the writer
    thread otherwise each grow their own), and Arrow on the system allocator, which returns
    freed batches to it instead of holding them in a private pool."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name:
            with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): nothing to tune
                ctypes.CDLL(libc_name).mallopt(_M_ARENA_MAX, arenas)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """For a loop that allocates many short-lived records: they are freed by reference counting,
    so the cyclic GC (rarely run meanwhile) would only burn CPU scanning them."""
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(1_000_000, 100, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextlib.contextmanager
def stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``handler`` meanwhile (only in the main thread: inside an
    orchestrator's thread the host handles signals)."""
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
