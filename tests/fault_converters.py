"""Converters that misbehave on purpose, importable by spawned export children (tests.fault_converters), and
their catalogue entries: `$EDGEBENCH_FORMATS=tests.fault_converters:FAULT` adds the format `fault`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from edgebench.catalogue import THREE_D, FormatEntry, Ref, none
from edgebench.converters.base import Converter
from edgebench.records import TensorSpec


def _entry(name: str, converter: str) -> FormatEntry:
    return FormatEntry(name=name, converter=Ref(f"tests.fault_converters:{converter}"), runtimes={},
                       precisions=("fp32",), default_precisions=("fp32",), export_form=THREE_D, suffixes=(".bin",),
                       tapper=none("a test format: no tensors to tap"), sniffer=none("a test format: no content to know"))


FAULT = _entry("fault", "Raising")  # every converter below has the format `fault`: its suffix, precisions, form
HANG, TINY, SLOW = _entry("hang", "Hanging"), _entry("tiny", "Tiny"), _entry("slow", "Slow")
PLUGIN = ",".join(f"tests.fault_converters:{name}" for name in ("FAULT", "HANG", "TINY", "SLOW"))  # $EDGEBENCH_FORMATS


class _Fault(Converter):
    format = "fault"
    library = "torch"

    def op_census(self, out: Path) -> dict[str, int]:
        return {"Op": 1}

    def io_specs(self, out: Path):
        return (TensorSpec("video", ()),), (TensorSpec("logits", ()),)


class Raising(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        raise RuntimeError("converter exploded on purpose")


class Segfaulting(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(b"half")  # a partial file the crash leaves behind
        os.kill(os.getpid(), signal.SIGSEGV)


class Hanging(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(b"half")
        time.sleep(3600)


class WritesNothing(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        pass


class WritesEmpty(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(b"")


class Unreadable(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(b"not a model")

    def op_census(self, out: Path) -> dict[str, int]:
        raise ValueError("bad magic number")


class Misnamed(_Fault):
    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(b"bytes")

    def io_specs(self, out: Path):
        return (TensorSpec("x", ()),), (TensorSpec("logits", ()),)


class Tiny(_Fault):
    """Well behaved and fast: writes a few bytes; the cache tests use it to avoid real exports."""

    def default_options(self) -> dict[str, Any]:
        return {"flavour": "plain"}

    def export(self, model, ref, precision, options, out) -> None:
        Path(out).write_bytes(f"tiny {options['flavour']}".encode())


class Slow(Tiny):
    """Well behaved but slow (3 s): long enough for a second exporter of the same key to arrive meanwhile."""

    def export(self, model, ref, precision, options, out) -> None:
        time.sleep(3)
        super().export(model, ref, precision, options, out)


class Hungry(_Fault):
    """Allocates and touches `mb` MiB while exporting: past a small memory budget, the child runs out."""

    def default_options(self) -> dict[str, Any]:
        return {"mb": 8192}

    def export(self, model, ref, precision, options, out) -> None:
        from tests.child_jobs import hungry

        hungry(options["mb"])
        Path(out).write_bytes(b"never")
