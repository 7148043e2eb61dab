"""A converter that raises, crashes or hangs gives an export_failed record; the others still export."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgebench.converters.export import ArtifactError, _export_job, cached_artifact, export_artifact
from edgebench.converters.registry import get_converter
from tests import fault_converters as faults

pytestmark = pytest.mark.usefixtures("fault_formats")  # the `fault` format's entry: suffix, precisions, form


def test_raise_crash_and_hang_fail_alone(small_ref, tmp_path):
    jobs = {
        "raise": (faults.Raising(), 300),
        "segv": (faults.Segfaulting(), 300),
        "hang": (faults.Hanging(), 5),
        "unreadable": (faults.Unreadable(), 300),
        "normal": (get_converter("torchscript"), 300),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(export_artifact, small_ref, "torchscript" if name == "normal" else "fault",
                                     "fp32", {}, tmp_path / name, timeout, True, converter)
                   for name, (converter, timeout) in jobs.items()}
    got = {name: f.result() for name, f in futures.items()}

    assert got["raise"].reason == "RuntimeError: converter exploded on purpose"
    assert got["segv"].reason == "killed by SIGSEGV"
    assert got["hang"].reason == "timeout after 5 s"
    assert got["unreadable"].reason == "ArtifactError: model.bin cannot be read back (ValueError: bad magic number)"
    for name in ("raise", "segv", "hang", "unreadable"):
        a = got[name]
        folder = Path(a.log_path).parent
        assert a.status == "export_failed" and not a.ok and a.path == "" and a.size_bytes == 0, name
        assert Path(a.log_path).exists() and (folder / "artifact.json").exists(), name
        assert not (folder / "model.bin").exists(), f"{name}: a partial file was moved into the cache"
        assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")], f"{name}: temporary folder left"
        assert cached_artifact(folder, a.cache_key, jobs[name][0]) is None, f"{name}: a failure is a cache hit"
    assert "converter exploded on purpose" in Path(got["raise"].log_path).read_text()  # the traceback is kept

    normal = got["normal"]
    assert normal.ok, normal.reason
    assert Path(normal.path).stat().st_size > 0 and normal.op_census


@pytest.mark.parametrize("converter, message", [
    (faults.WritesNothing(), "the converter wrote no model.bin"),
    (faults.WritesEmpty(), "empty or missing output: model.bin"),
    (faults.Unreadable(), r"model.bin cannot be read back \(ValueError: bad magic number\)"),
    (faults.Misnamed(), r"input names \['x'\] != \['video'\]"),
])
def test_child_checks_what_the_converter_wrote(small_ref, tmp_path, converter, message):
    """The checks _export_job runs in the child, called in-process (negative controls)."""
    with pytest.raises(ArtifactError, match=message):
        _export_job(converter, small_ref, "fp32", {}, str(tmp_path / "model.bin"))


def test_well_behaved_converter_passes_the_child_checks(small_ref, tmp_path):
    result = _export_job(faults.Tiny(), small_ref, "fp32", {"flavour": "plain"}, str(tmp_path / "model.bin"))
    assert result["files"] == ["model.bin"] and result["op_census"] == {"Op": 1}
    assert [t.name for t in result["inputs"]] == ["video"]
