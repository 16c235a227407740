"""Process-wide settings, applied once when a command starts: torch's threads and freed-memory reuse.

Threads: as many as this process may run on (its CPU affinity, which ``taskset``, cgroups and SLURM's
``--cpus-per-task`` narrow; not the machine's core count), shared out between the jobs a multirun runs
side by side on this machine, so runs started together do not oversubscribe the cores (an OpenMP step
waits for its slowest thread).

Freed memory: kept in the process instead of returned to the system.

A training step allocates and frees activations of tens of megabytes each. glibc serves blocks that
large with fresh ``mmap`` pages and unmaps them on ``free``, so every step pays page faults and the
kernel's zeroing of every page again (reusing them made training 1.10x faster on a 2-core CPU,
measured by ``unet-benchmark mode=levers``). With ``mmap`` off and trimming raised, freed blocks are reused.
The process keeps its peak memory instead of shrinking between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import resource
import sys
from collections.abc import Mapping
from typing import Any

from unet.utils.errors import ConfigError

# mallopt parameters (malloc.h) and glibc's defaults.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int)
# The value of runtime.threads that leaves the count to thread_count.
AUTO = "auto"
# The environment variable OpenMP (and torch's default) takes the thread count from.
OMP_NUM_THREADS = "OMP_NUM_THREADS"


def reuse_freed_memory(enabled: bool = True) -> bool:
    """Turn freed-memory reuse on (or back to glibc's defaults); returns whether glibc took the setting.

    A no-op returning ``False`` where the C library is not glibc (macOS, musl, Windows).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mmap_max, trim_threshold = (
        (0, KEEP_TRIM_THRESHOLD) if enabled else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    )
    return bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))


def release_freed_memory() -> None:
    """Hand memory that is free inside the process back to the system (glibc ``malloc_trim``).

    Measurements of resident memory call this first, so memory kept for reuse does not hide what a
    measured call allocates.
    """
    if platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def affinity_cpus() -> int:
    """How many CPUs this process may run on (its affinity; the machine's count where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs() -> int:
    """How many jobs of the running Hydra multirun run side by side on this machine (1 outside one).

    The joblib launcher runs ``hydra.launcher.n_jobs`` at once (joblib's count: -1 is every CPU);
    a sweeper that hands the launcher batches (Optuna's ``hydra.sweeper.n_jobs``) caps that. The basic
    launcher runs jobs one after another, and a cluster launcher (SLURM) gives each its own CPUs.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1
    hydra = HydraConfig.get()
    launcher, sweeper = hydra.get("launcher") or {}, hydra.get("sweeper") or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    jobs = launcher.get("n_jobs")
    cpus = affinity_cpus()
    jobs = cpus if jobs is None else (cpus + 1 + int(jobs) if int(jobs) < 0 else int(jobs))
    batch = sweeper.get("n_jobs")
    return max(1, min(jobs, int(batch)) if isinstance(batch, int) and batch > 0 else jobs)


def thread_count(threads: int | str | None = AUTO) -> int:
    """The threads ``runtime.threads`` asks for: a positive number, or ``auto`` (``None``):
    ``$OMP_NUM_THREADS`` when set, else this process's CPUs shared out between a multirun's parallel
    jobs (:func:`parallel_jobs`), at least 1."""
    if threads is None or threads == AUTO:
        environment = os.environ.get(OMP_NUM_THREADS, "")
        if environment.isdigit() and int(environment) > 0:
            return int(environment)
        return max(1, affinity_cpus() // parallel_jobs())
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"runtime.threads={threads}: expected a positive number of threads, or {AUTO}")
    return threads


def apply_runtime(runtime: Mapping[str, Any] | None) -> None:
    """Apply the ``runtime`` config group (``configs/runtime/default.yaml``) to this process.

    Commands call it once at start-up, before any work; library functions never switch process-wide state.
    torch's inter-op pool is left alone: it can be sized only before its first use, and nothing here
    runs operators in parallel with each other.
    """
    runtime = runtime or {}
    import torch  # here, not at the top: a command's --help and config errors answer without torch

    torch.set_num_threads(thread_count(runtime.get("threads", AUTO)))
    reuse_freed_memory(bool(runtime.get("reuse_freed_memory", True)))


def peak_resident_bytes() -> int:
    """The process's peak resident memory so far (``ru_maxrss``: kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
