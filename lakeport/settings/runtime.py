"""Process-level tuning applied at the edge (the CLI), before worker threads start."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

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
