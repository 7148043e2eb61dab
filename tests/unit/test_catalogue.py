"""The format catalogue: every format has every part or says why not, and the defaults come from it."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from edgebench import catalogue
from edgebench.catalogue import LOWERED, THREE_D, FormatEntry, Ref
from edgebench.config import CONFIG_DIR, PipelineConfig, Precision, load_pipeline_config
from edgebench.converters.base import Converter
from edgebench.converters.registry import get_converter
from edgebench.errors import UserError
from edgebench.runtimes.base import Runtime

PARTS = [f.name for f in fields(FormatEntry) if f.type == "Ref"]  # converter, tapper, sniffer, float_layers, ...


def problems(entry: FormatEntry) -> list[str]:
    """What is wrong with one entry: a part neither present nor explained, a reference that does not load,
    a part of the wrong kind, names that disagree."""
    found, loaded = [], {}
    for name in PARTS:
        part = getattr(entry, name)
        if not part and not part.none.strip():
            found.append(f"{entry.name}.{name}: neither a reference nor a reason")
        elif part:
            try:
                loaded[name] = part.load()
            except (ImportError, AttributeError, ValueError) as e:
                found.append(f"{entry.name}.{name}: {part.target} does not load ({e})")
    cls = loaded.get("converter")
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, Converter) and cls.format == entry.name):
        found.append(f"{entry.name}.converter: not a Converter of format {entry.name}")
    for runtime, ref in entry.runtimes.items():
        cls = ref.load()
        if not (isinstance(cls, type) and issubclass(cls, Runtime)) or cls.name != runtime:
            found.append(f"{entry.name}.runtimes.{runtime}: not a Runtime named {runtime}")
    if not entry.runtimes:
        found.append(f"{entry.name}: no runtime runs it")
    found += [f"{entry.name}.{name}: not callable" for name in ("tapper", "sniffer")
              if name in loaded and not callable(loaded[name])]
    known = set(typing.get_args(Precision))
    if not set(entry.default_precisions) <= set(entry.precisions) <= known:
        found.append(f"{entry.name}: defaults {entry.default_precisions} not within {entry.precisions} within {known}")
    if entry.export_form not in (LOWERED, THREE_D):
        found.append(f"{entry.name}: export form {entry.export_form!r}")
    if not entry.suffixes or not all(s.startswith(".") for s in entry.suffixes):
        found.append(f"{entry.name}: suffixes {entry.suffixes}")
    return found


def test_every_format_has_every_part_or_says_why_not():
    assert list(catalogue.formats()) == ["torchscript", "onnx", "coreml", "tflite", "executorch"]
    assert [p for entry in catalogue.formats().values() for p in problems(entry)] == []


def test_the_walk_finds_a_missing_part_a_broken_reference_and_a_wrong_kind():
    """Negative control: each kind of hole makes the walk fail."""
    onnx = catalogue.format_entry("onnx")
    silent = FormatEntry(**{**vars(onnx), "sniffer": Ref()})
    broken = FormatEntry(**{**vars(onnx), "tapper": Ref("edgebench.parity.taps.onnx:no_such_function")})
    wrong = FormatEntry(**{**vars(onnx), "converter": Ref("edgebench.converters.tflite:TFLiteConverter")})
    assert problems(silent) == ["onnx.sniffer: neither a reference nor a reason"]
    assert "does not load" in problems(broken)[0]
    assert problems(wrong) == ["onnx.converter: not a Converter of format onnx"]


def test_converters_and_runtimes_read_their_facts_from_the_catalogue():
    for name, entry in catalogue.formats().items():
        converter = get_converter(name)
        assert converter.precisions == set(entry.precisions) and converter.suffix == entry.suffixes[0]
        assert converter.lowered_form == (entry.export_form == LOWERED)
        for runtime in entry.runtimes:
            assert name in catalogue.formats_run_by(runtime)
    assert catalogue.formats_run_by(catalogue.EAGER.runtime) == {catalogue.EAGER.format}


def test_config_defaults_are_the_catalogue():
    config = PipelineConfig()
    assert config.formats == {name: list(e.default_precisions) for name, e in catalogue.formats().items()}
    assert config.runtimes == list(catalogue.runtime_refs())
    assert config.runtimes[0] == catalogue.EAGER.runtime


def test_the_shipped_yaml_says_the_catalogue_defaults():
    shipped = load_pipeline_config(CONFIG_DIR / "pipeline.yaml")
    assert shipped.formats == PipelineConfig().formats
    assert shipped.runtimes == PipelineConfig().runtimes
    for fmt, options in shipped.converter_options.items():  # spelled out for the reader: each is the default
        converter = get_converter(fmt)
        assert converter.merge_options(options) == converter.merge_options(None), fmt


def test_an_unknown_name_lists_the_catalogue():
    with pytest.raises(UserError, match="unknown format 'gguf'; known formats: torchscript, onnx, coreml"):
        catalogue.format_entry("gguf")
    with pytest.raises(LookupError, match="no such part: fp32 only"):
        catalogue.format_entry("torchscript").float_layers.load()


def test_a_plugin_format_joins_through_the_environment(monkeypatch):
    monkeypatch.setenv(catalogue.PLUGINS_ENV, "tests.fault_converters:TINY")
    assert list(catalogue.formats())[-1] == "tiny"
    assert PipelineConfig(formats={"tiny": ["fp32"]}).formats == {"tiny": ["fp32"]}
    monkeypatch.setenv(catalogue.PLUGINS_ENV, "tests.fault_converters:Tiny")  # a class, not an entry
    with pytest.raises(UserError, match="not a FormatEntry"):
        catalogue.formats()
