"""Keep freed memory in the process, so that a CPU training step does not page-fault.

XLA's CPU runtime allocates each call's temporary buffers afresh and frees
them after. glibc's malloc serves large blocks straight from the OS (`mmap`)
and hands them back on `free`, so every training step touches megabytes of
new pages, each a page fault the kernel must zero-fill. Telling malloc to
keep freed memory for reuse (the effect of `LD_PRELOAD`ing tcmalloc or
jemalloc, which TensorFlow and PyTorch recommend on CPU) takes that to zero.

Threads other than the main one allocate from their own arenas, made of
64 MiB heaps; glibc unmaps such a heap as soon as it empties, whatever the
trim threshold says, unless the top pad is at least a heap's size. A block
larger than a heap, allocated off the main thread, still comes straight from
the OS. One arena for all threads (`M_ARENA_MAX=1`) would avoid that too, but
made the default LeNet step slower. docs/performance.md ("Memory") has the
measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
THREAD_HEAP_SIZE = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit machines


def retain_freed_memory_on_cpu() -> bool:
    """`retain_freed_memory()` if JAX computes on the CPU (a GPU's or TPU's buffers are not
    malloc's); starts JAX's backends, so call it after anything that must precede them.

    Returns:
      True if applied.
    """
    import jax

    return jax.default_backend() == "cpu" and retain_freed_memory()


def retain_freed_memory() -> bool:
    """Tells glibc's malloc to serve every block from its heaps and never trim or unmap them.

    Affects the whole process from the call on; freed memory stays reserved
    for reuse instead of returning to the OS. Call it once at program start
    (`train.py` and the benchmarks do).

    Returns:
      True if applied; False where the C library has no `mallopt` (not glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, THREAD_HEAP_SIZE)]
    return all([mallopt(option, value) for option, value in settings])
