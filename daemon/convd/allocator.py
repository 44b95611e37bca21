"""How the C allocator hands out big blocks: from its heap, kept there once freed.

A page of the list (``conv.list``, up to 1,000 conversations: ~500 KB) is copied a few times
on its way out: SQLite joins the renderings, the JSON array is closed around them, the
response line is encoded. Python asks malloc for each such block. glibc's malloc serves a
block over its mmap threshold (128 KiB at first, raised to the size of the largest block
freed) with a fresh mapping, and gives the free top of its heap back to the kernel beyond
twice that threshold. Both return memory that the next page needs again: every copy then
lands on new pages, and each page is faulted in, and zeroed, on first touch. On this kind
of VM that costs more than the copying: ``b"[" + page + b"]"`` of 500 KB took 479 us in a
loop, 22 us with the settings below.

So blocks up to ``MMAP_THRESHOLD`` come from the heap, and up to ``TRIM_THRESHOLD`` of free
heap is kept rather than given back. Measured on 10,000 conversations listed in pages of
1,000 (two daemons side by side, alternating, 60 listings each; medians of five runs): p50
15.7 -> 12.5 ms, daemon CPU per listing 14.2 -> 11.5 ms, ~1,100 page faults per listing -> 0;
the write path did not move.
The cost: after a burst of big pages, up to ``TRIM_THRESHOLD`` of freed memory per malloc
arena (the event loop's, and one for each thread that allocated much) stays in the
process's RSS.

glibc only (``mallopt`` through ctypes): elsewhere (musl, macOS, Windows), or where
``mallopt`` refuses a value (a 32-bit glibc caps the mmap threshold at 512 KiB), malloc is
left as it is, which costs speed, nothing else. glibc's manual marks ``mallopt`` MT-Unsafe;
it runs here while other threads allocate, which is safe in practice: it changes word-sized
settings under the main arena's lock.
"""

from __future__ import annotations

import logging
import os
from typing import Final

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_big_blocks"]

logger = logging.getLogger(__name__)

#: Blocks up to this size come from malloc's heap, not a fresh mapping each.
MMAP_THRESHOLD: Final = 4 * 1024 * 1024
#: Free memory at the top of a heap is given back to the kernel only beyond this.
TRIM_THRESHOLD: Final = 16 * 1024 * 1024

# <malloc.h>
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # not POSIX, or not a name this libc knows
        return False


def keep_big_blocks() -> bool:
    """Set malloc's thresholds (above) for this process; False where they were not set.

    Never raises: it is an optimisation, and the daemon runs on without it.
    """
    if not _glibc():
        return False
    # Imported here: ctypes costs ~5 ms, and this runs once the daemon accepts.
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
        # mallopt returns 1 on success, 0 on error.
        done: bool = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    except (OSError, AttributeError) as exc:
        logger.debug("malloc's thresholds left as they are: %s", exc)
        return False
    if done:
        logger.debug(
            "malloc serves blocks up to %d KiB from its heap and keeps up to %d KiB free there",
            MMAP_THRESHOLD // 1024,
            TRIM_THRESHOLD // 1024,
        )
    else:
        logger.debug("malloc refused a threshold: big replies cost more here")
    return done
