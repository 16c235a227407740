"""Freed-memory reuse: a large block freed and allocated again costs no new page faults."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")

# In a fresh process, as the apps call it: the fewest page faults of allocating, touching and freeing
# a 64 MiB tensor over a few tries (the heap settles after the first, as in a training loop).
PROGRAM = """
import resource, sys, torch
from unet.allocator import reuse_freed_memory
assert reuse_freed_memory(sys.argv[1] == "on")
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20 // 4)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


def page_faults(setting: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, setting], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_freed_blocks_are_reused_only_when_enabled():
    assert page_faults("on") < 1000
    assert page_faults("off") > 10000  # 16384 fresh 4 KiB pages every time
