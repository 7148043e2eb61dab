"""One sampler for every command: a model trained on uniform clips, scored by `edgebench evaluate` (eager, in its
child process) and classified by `edgebench demo`, under each declared `preprocess.sampling` (and with 3 clips)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from edgebench.cli import main
from edgebench.evaluation.dataset import load_dataset
from tests.evaluation_model import BLINKS
from tests.sampling_fixture import BlinkFixture, build_blink_fixture

PROTOCOLS = ("uniform", "consecutive")
RUNS = [("uniform", 1), ("consecutive", 1), ("consecutive", 3)]  # (sampling, clips per video)


@pytest.fixture(scope="module")
def blink(tmp_path_factory) -> BlinkFixture:
    return build_blink_fixture(tmp_path_factory.mktemp("blink"))


@pytest.fixture(scope="module")
def evaluated(blink, tmp_path_factory) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """`edgebench evaluate --clips-per-video K` of eager PyTorch for each (protocol, K): its saved predictions."""
    folder = tmp_path_factory.mktemp("blink-out")
    config = folder / "pipeline.yaml"
    config.write_text("formats: {}\nthreads: 1\n")  # eager only: the protocol, not a converter, is under test
    found = {}
    for sampling, clips in RUNS:
        out = folder / f"{sampling}-{clips}"
        with contextlib.redirect_stdout(io.StringIO()):
            main(["evaluate", "--model", str(blink.yamls[sampling]), "--weights", str(blink.weights), "--dataset",
                  str(blink.dataset), "--clips-per-video", str(clips), "--config", str(config), "--out", str(out)])
        (run_dir,) = (out / "runs").iterdir()
        (npz,) = (run_dir / "evaluation").glob("*/pytorch-fp32-torch.npz")
        with np.load(npz) as saved:
            found[sampling, clips] = {k: saved[k] for k in ("video_pred", "video_probs", "targets")}
    return found


def demo_top(blink: BlinkFixture, sampling: str, video: str, clips: int = 1) -> tuple[str, float]:
    from edgebench.demo import classify

    return classify(Path(video), str(blink.yamls[sampling]), str(blink.weights), top=1, clips=clips).top[0]


def test_scored_with_another_protocol_a_trained_model_loses_a_class(blink, evaluated):
    """The issue's symptom kept as a test: trained on uniform clips, right on every video sampled that way; the same
    weights declared `consecutive` lose the fast blink entirely (two lit, two dark: the slow blink's look)."""
    assert blink.train_accuracy == 1.0
    right = {s: evaluated[s, 1]["video_pred"] == evaluated[s, 1]["targets"] for s in PROTOCOLS}
    assert right["uniform"].all()
    fast = evaluated["consecutive", 1]["targets"] == BLINKS.index("blinking fast")
    assert not right["consecutive"][fast].any() and right["consecutive"].mean() < 0.8


@pytest.mark.parametrize("sampling, clips", RUNS)
def test_demo_and_evaluate_give_the_same_prediction_on_every_video(blink, evaluated, sampling, clips):
    videos = load_dataset(blink.dataset, BLINKS)
    scored = evaluated[sampling, clips]
    assert [v.target for v in videos] == list(scored["targets"])  # the same videos, in the same order
    for i, v in enumerate(videos):
        label, prob = demo_top(blink, sampling, v.path, clips)
        assert label == BLINKS[scored["video_pred"][i]], v.path
        assert prob == pytest.approx(scored["video_probs"][i].max(), abs=1e-5)


def test_the_agreement_check_can_fail(blink, evaluated):
    """Negative control: the demo under one protocol against evaluate under the other disagrees on some video."""
    videos = load_dataset(blink.dataset, BLINKS)
    demo_uniform = [demo_top(blink, "uniform", v.path)[0] for v in videos]
    assert demo_uniform != [BLINKS[p] for p in evaluated["consecutive", 1]["video_pred"]]
