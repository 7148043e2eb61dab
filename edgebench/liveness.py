"""Is it still there? A process by its pid, a Prefect API by its /health endpoint (one check of each)."""

from __future__ import annotations

import os
import urllib.request


def pid_alive(pid: int) -> bool:
    """The process exists (a zombie child of ours counts as gone; another user's process counts as alive)."""
    if pid <= 0:  # os.kill(-1, 0) would signal every process we may signal
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pid_done, _ = os.waitpid(pid, os.WNOHANG)
        return pid_done == 0
    except ChildProcessError:  # not our child: it exists
        return True


def probe(url: str, timeout_s: float = 3) -> str:
    """The API at `url` (".../api"): ok, refused (nothing listens: the server is gone) or slow (no answer in time)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as r:
            return "ok" if r.status == 200 else "slow"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "refused" if isinstance(getattr(e, "reason", None), ConnectionRefusedError) else "slow"
