"""Device kind -> backend, from the catalogue's DEVICE_KINDS; a new kind is one backend module and one entry there."""

from __future__ import annotations

import functools

from edgebench.catalogue import DEVICE_KINDS, split_device
from edgebench.devices.base import Backend, BenchJob, Device, Measured, skipped


@functools.lru_cache(maxsize=1)
def backends() -> dict[str, Backend]:
    """One instance per device kind, in catalogue order (imports every backend module)."""
    return {k.name: k.backend.load()() for k in DEVICE_KINDS}


def parse_device(text: str) -> Device:
    """Parse one device string; an unknown kind or a missing name is a one-line UserError."""
    return Device(*split_device(text))


def parse_devices(texts: list[str]) -> list[Device]:
    """Parse and de-duplicate, keeping the first-seen order."""
    seen: dict[str, Device] = {}
    for t in texts:
        d = parse_device(t)
        seen.setdefault(d.label, d)
    return list(seen.values())


def configured_devices(config) -> list[Device]:
    """`devices:` then what each backend's own section adds, de-duplicated."""
    extra = [d.label for b in backends().values() for d in b.configured(config)]
    return parse_devices([*config.devices, *extra])


def backend_for(device: str) -> Backend:
    return backends()[parse_device(device).kind]


def report_columns() -> dict[str, str]:
    """The results.csv columns the backends add (name -> str | int | float), in catalogue order."""
    return {c: kind for b in backends().values() for c, kind in b.report_columns.items()}


def report_cells(row) -> dict:
    """The device-specific cells of a latency row, from its device's backend (none for an unknown kind)."""
    backend = backends().get(row.device.partition(":")[0]) if row.device else None
    return backend.report_cells(row) if backend else {}


def plan_jobs(artifacts, pm, config) -> list[BenchJob]:
    """Every backend's jobs for its configured devices, in device order."""
    return [job for d in configured_devices(config) for job in backends()[d.kind].plan(d, artifacts, pm, config)]


def run_job(job: BenchJob, pm, settings) -> Measured:
    """Run one planned job on its backend; a job planned with a reason gives its skipped row."""
    return run_batch([job], pm, settings)[0]


def batches(plan: list[BenchJob]) -> list[list[BenchJob]]:
    """The plan cut into what is measured in one go: a `together` backend's jobs of one device, else one job each."""
    out: list[list[BenchJob]] = []
    for job in plan:
        if out and out[-1][0].device == job.device and backend_for(job.device).together:
            out[-1].append(job)
        else:
            out.append([job])
    return out


def run_batch(jobs: list[BenchJob], pm, settings) -> list[Measured]:
    """Measure a batch of one device on its backend; jobs planned with a reason give their skipped rows, in place."""
    runnable = [j for j in jobs if not j.why_not]
    measured = iter(backend_for(runnable[0].device).run_batch(runnable, pm, settings) if runnable else [])
    return [skipped(j, j.why_not) if j.why_not else next(measured) for j in jobs]
