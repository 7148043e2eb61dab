"""Device kind -> backend; adding a device kind is one module and one line here."""

from __future__ import annotations

from edgebench.devices.aihub import AIHubBackend
from edgebench.devices.base import Backend, BenchJob, Device, Measured, skipped
from edgebench.devices.local import LocalBackend
from edgebench.devices.queue import QueueBackend
from edgebench.errors import UserError

BACKENDS: dict[str, Backend] = {b.kind: b for b in (LocalBackend(), AIHubBackend(), QueueBackend())}


def _forms() -> str:
    return ", ".join(f"'{b.kind}:{b.example}'" if b.named else f"'{b.kind}'" for b in BACKENDS.values())


def parse_device(text: str) -> Device:
    """Parse one device string; an unknown kind or a missing name is a one-line UserError."""
    kind, _, name = str(text).strip().partition(":")
    backend = BACKENDS.get(kind.strip().lower())
    if backend is None:
        raise UserError(f"device '{text}': unknown device kind; expected {_forms()}")
    return backend.device(name.strip())


def parse_devices(texts: list[str]) -> list[Device]:
    """Parse and de-duplicate, keeping the first-seen order."""
    seen: dict[str, Device] = {}
    for t in texts:
        d = parse_device(t)
        seen.setdefault(d.label, d)
    return list(seen.values())


def configured_devices(config) -> list[Device]:
    """`devices:` then what each backend's own section adds, de-duplicated."""
    extra = [d.label for b in BACKENDS.values() for d in b.configured(config)]
    return parse_devices([*config.devices, *extra])


def backend_for(device: str) -> Backend:
    return BACKENDS[parse_device(device).kind]


def plan_jobs(artifacts, pm, config) -> list[BenchJob]:
    """Every backend's jobs for its configured devices, in device order."""
    return [job for d in configured_devices(config) for job in BACKENDS[d.kind].plan(d, artifacts, pm, config)]


def run_job(job: BenchJob, pm, settings) -> Measured:
    """Run one planned job on its backend; a job planned with a reason gives its skipped row."""
    if job.why_not:
        return skipped(job, job.why_not)
    return backend_for(job.device).run(job, pm, settings)
