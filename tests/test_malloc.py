import subprocess
import sys

import pytest

from jaxcnn import malloc

# Allocates, fills and frees a 40 MiB block ten times, as XLA does a step's
# temporaries, and prints the page faults per round. On a thread other than
# the main one, a 40 MiB block held throughout makes each round's block
# overflow into a second heap of the thread's arena, which glibc unmaps
# whenever it empties.
FAULTS_PER_ROUND = """
import ctypes, ctypes.util, resource, sys, threading
from jaxcnn import malloc
mode, where = sys.argv[1:]
if mode == "retain":
    assert malloc.retain_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 40 << 20
def filled_block():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block
def rounds(faults):
    if where == "thread":
        filled_block()
    libc.free(filled_block())
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(10):
        libc.free(filled_block())
    faults.append((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 10)
faults = []
if where == "thread":
    thread = threading.Thread(target=rounds, args=(faults,))
    thread.start()
    thread.join()
else:
    rounds(faults)
print(faults[0])
"""


def faults_per_round(mode: str, where: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_ROUND, mode, where],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


@pytest.mark.parametrize("where", ["main", "thread"])
def test_retained_memory_is_reused_without_page_faults(where):
    default, retained = faults_per_round("default", where), faults_per_round("retain", where)
    # 40 MiB of fresh 4 KiB pages is 10,240 faults (fewer with huge pages).
    assert default > 1000, default
    assert retained < 50, retained


def test_retain_freed_memory_reports_success_on_glibc():
    assert malloc.retain_freed_memory() is True


def test_malloc_settings_apply_on_the_cpu_only(monkeypatch):
    import jax

    calls = []
    monkeypatch.setattr(malloc, "retain_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert malloc.retain_freed_memory_on_cpu() is False and calls == []
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert malloc.retain_freed_memory_on_cpu() is True and calls == [1]
