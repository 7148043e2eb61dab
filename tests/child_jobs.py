"""Jobs for isolation.run_isolated children in the interrupt tests; imports nothing heavy, so children start fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def sleeper(seconds: float, pid_file: str) -> str:
    """Start a grandchild in the same process group, write both pids to `pid_file`, sleep."""
    grandchild = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])
    Path(pid_file).write_text(f"{os.getpid()} {grandchild.pid}")
    time.sleep(seconds)
    return "slept"


def hungry(mb: int) -> int:
    """Allocate and touch `mb` MiB (every page resident), then return how many MiB it holds."""
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block) // (1024 * 1024)
