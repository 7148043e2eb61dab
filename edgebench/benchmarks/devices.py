"""Device strings: "local", "aihub:<device name>", "queue:<work queue name>"."""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.errors import UserError

LOCAL = "local"
AIHUB = "aihub"
QUEUE = "queue"
KINDS = (LOCAL, AIHUB, QUEUE)


@dataclass(frozen=True)
class Device:
    """Where a benchmark runs: this host, a Qualcomm AI Hub device, or a machine behind a Prefect work queue."""

    kind: str  # local | aihub | queue
    name: str = ""  # AI Hub device name ("Samsung Galaxy S24 (Family)") or work queue name

    @property
    def label(self) -> str:
        """The string form used in rows and reports (round-trips through parse_device)."""
        return self.kind if self.kind == LOCAL else f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.label


def parse_device(text: str) -> Device:
    """Parse one device string; anything else is a one-line UserError."""
    s = str(text).strip()
    if s == LOCAL:
        return Device(LOCAL)
    kind, sep, name = s.partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if sep and kind in (AIHUB, QUEUE):
        if not name:
            raise UserError(f"device '{text}': missing the name after '{kind}:'")
        return Device(kind, name)
    raise UserError(f"device '{text}': expected 'local', 'aihub:<device name>' or 'queue:<work queue name>'")


def parse_devices(texts: list[str]) -> list[Device]:
    """Parse and de-duplicate, keeping the first-seen order."""
    seen: dict[str, Device] = {}
    for t in texts:
        d = parse_device(t)
        seen.setdefault(d.label, d)
    return list(seen.values())
