import subprocess
import sys

from jaxcnn import malloc

# Allocates, fills and frees a 64 MB block ten times, as XLA does a step's
# temporaries, and prints the page faults per round.
FAULTS_PER_ROUND = """
import ctypes, ctypes.util, resource, sys
from jaxcnn import malloc
if sys.argv[1] == "retain":
    assert malloc.retain_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
def round_trip():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round_trip()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def faults_per_round(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_ROUND, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def test_retained_memory_is_reused_without_page_faults():
    default, retained = faults_per_round("default"), faults_per_round("retain")
    # 64 MB of fresh 4 KiB pages is 16,384 faults (fewer with huge pages).
    assert default > 1000, default
    assert retained < 50, retained


def test_retain_freed_memory_reports_success_on_glibc():
    assert malloc.retain_freed_memory() is True
