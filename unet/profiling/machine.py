"""Which machine a measurement ran on, named as precisely as a speed figure needs.

Two machines both called "AMD EPYC" differ by 50x in bf16 training (AVX-512 BF16 or not), so every
figure carries the processor's model and vector extensions, or the GPU's name.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def _cpuinfo(field: str) -> str | None:
    """The value of the first ``field`` line of ``/proc/cpuinfo`` (Linux), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name, e.g. ``AMD EPYC 9R14``, or the architecture where the OS does not say."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def default_device(requested: str | None = None) -> str:
    """The device the ``device`` key names: the one asked for; ``auto`` (or ``None``): ``cuda`` when
    present, else ``cpu``."""
    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine_name(device: str) -> str:
    """The processor that runs the steps: the GPU's name, else the CPU model and torch's thread count."""
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def cpu_flags() -> str:
    """The CPU's vector extensions (two 'AMD EPYC' machines differ in AVX-512 and bf16)."""
    flags = (_cpuinfo("flags") or "").split()
    return " ".join(sorted(flag for flag in flags if flag.startswith(("avx", "amx"))))
