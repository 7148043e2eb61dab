"""Errors a user can fix (the CLI prints them as one line and exits with code 2), and one-line reasons."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves) and the lone escapes some tools print: never part of a reason.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")


class UserError(Exception):
    """Bad input (config, model name, weights, video): one line, no traceback."""


def plain(text: str) -> str:
    """`text` without terminal escape sequences."""
    return _ANSI.sub("", text)


def reason_of(e: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, without terminal escapes, at most `limit` characters."""
    lines = [line for line in plain(str(e)).strip().splitlines() if line.strip()]
    line = f"{type(e).__name__}: {lines[0].strip()}" if lines else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
