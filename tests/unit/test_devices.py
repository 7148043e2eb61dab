"""Device backends behind one registry, and runtime options / variants from the YAML into results.csv."""

import re
from pathlib import Path

import pytest

from edgebench import pipeline
from edgebench.config import PipelineConfig, validate
from edgebench.devices import registry
from edgebench.devices.base import Device
from edgebench.errors import UserError
from edgebench.records import PASSED, SKIPPED, Artifact
from tests.unit.bench_helpers import TINY_REF

VARIANTS = {"litert-no-xnnpack": {"runtime": "litert", "options": {"xnnpack": False}}}


def test_every_device_kind_parses_through_its_backend():
    assert registry.parse_device("local") == Device("local")
    assert registry.parse_device(" AIHUB: Samsung Galaxy S24 (Family) ").label == "aihub:Samsung Galaxy S24 (Family)"
    assert registry.parse_device("queue:second-host") == Device("queue", "second-host")
    assert [d.label for d in registry.parse_devices(["local", "queue:a", "local"])] == ["local", "queue:a"]


@pytest.mark.parametrize("text, said", [("gpu:0", "unknown device kind"), ("aihub", "missing the name"),
                                        ("queue:", "missing the name"), ("local:x", "takes no name")])
def test_bad_devices_are_user_errors(text, said):
    with pytest.raises(UserError, match=said):
        registry.parse_device(text)


def test_unknown_device_kind_is_a_config_error_before_anything_starts():
    with pytest.raises(UserError, match=r"pipeline.yaml: field 'devices': .*'tpu:x': unknown device kind"):
        validate(PipelineConfig, {"devices": ["local", "tpu:x"]}, "pipeline.yaml")
    with pytest.raises(UserError, match="unknown device kind"):
        pipeline.narrow_config(PipelineConfig(), devices=["tpu:x"])
    assert validate(PipelineConfig, {"devices": ["local", "queue:q"]}, "p.yaml").devices == ["local", "queue:q"]


def test_runtime_options_and_variants_are_validated():
    config = validate(PipelineConfig, {"runtime_options": {"onnxruntime": {"graph_optimization": "basic"}},
                                       "runtime_variants": VARIANTS}, "p.yaml")
    assert config.runtime_spec("litert-no-xnnpack") == ("litert", {"xnnpack": False})
    assert config.runtime_spec("onnxruntime") == ("onnxruntime", {"graph_optimization": "basic"})
    assert config.runtime_spec("litert") == ("litert", {})
    for bad, said in [({"runtime_options": {"litert": {"xnnpak": False}}}, "runtime_options.*unknown option"),
                      ({"runtime_variants": {"x": {"runtime": "tensorrt"}}}, "runtime_variants.*unknown runtime 'tensorrt'"),
                      ({"runtime_variants": {"litert": {"runtime": "litert"}}}, "name of a registered runtime")]:
        with pytest.raises(UserError, match=said):
            validate(PipelineConfig, bad, "p.yaml")
    with pytest.raises(UserError, match="unknown runtime 'nope'"):
        pipeline.narrow_config(config, runtimes=["nope"])
    assert pipeline.narrow_config(config, runtimes=["litert-no-xnnpack"]).runtimes == ["litert-no-xnnpack"]


def test_the_queue_backend_outside_a_flow_says_why(tmp_path):
    config = PipelineConfig(devices=["queue:second-host"], runtimes=["torch", "onnxruntime", "litert"])
    pm = pipeline.PreparedModel(TINY_REF, "", "", 0)
    onnx = Artifact("tiny", "onnx", "fp32", PASSED, path="m.onnx")
    jobs = pipeline.bench_plan([onnx], pm, config)
    assert [(j.runtime, j.device, j.exclusive) for j in jobs] == [("onnxruntime", "queue:second-host", False)]
    settings = pipeline.new_run(config, tmp_path, quick=True)
    row = pipeline.bench_one(pm, jobs[0], settings).latency
    assert row.status == SKIPPED and "dispatched by the Prefect flow" in row.reason


# A device's kind compared anywhere, or a device string tested for a kind: only devices/ may do that.
BRANCH = re.compile(r"""(parse_device\(.*\)|\bdev\w*)\.kind\b|(==|!=|in)\s*\(?["'](aihub|queue)\b|startswith\(["'](aihub|queue)""")


def test_no_device_kind_branching_outside_the_backends():
    root = Path(pipeline.__file__).parent
    hits = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py") if "devices" not in p.parts
            for n, line in enumerate(p.read_text().splitlines(), 1) if BRANCH.search(line)]
    assert hits == []
    assert BRANCH.search('if parse_device(d).kind == QUEUE:') and BRANCH.search('d.startswith("aihub:")')  # control
