"""This machine's CPU: its model and the ISA flags that decide which kernels the runtimes pick."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# The flags that decide which kernels the runtimes pick (the CPU changes between sessions here).
KERNEL_ISA = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "sve", "i8mm", "bf16")


def cpu_isa(cpuinfo: str | None = None) -> list[str]:
    """The KERNEL_ISA flags /proc/cpuinfo lists for this CPU (x86 `flags`, Arm `Features`); [] elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("flags", "features"):
                present = set(value.split())
                return [f for f in KERNEL_ISA if f in present]
    except OSError:
        pass
    return []
