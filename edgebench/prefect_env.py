"""Prefect settings edgebench needs before prefect is imported: offline, patient, project-local."""

from __future__ import annotations

import os

from edgebench.config import PROJECT_ROOT

DEFAULTS = {
    "PREFECT_HOME": str(PROJECT_ROOT / ".prefect"),  # the SQLite database lives with the project
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no network here, and none wanted
    "DO_NOT_TRACK": "1",  # nor the client's telemetry, whose first-run notice would print on a terminal
    # The temporary server of ephemeral mode needs 20-40 s to start on a 2-core machine (default 20 s).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def apply_defaults() -> None:
    """Set each default unless the user already set it."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
