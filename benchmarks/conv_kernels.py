"""Time every distinct conv of a model's 2D-lowered form alone, LiteRT's XNNPACK against torch, interleaved.

    .venv/bin/python benchmarks/conv_kernels.py [--model resnet_mixed] [--rounds 9] [--threads 2]

Where the LiteRT fp32 row's distance to eager comes from (issue #17). One forward pass finds each
distinct 2D conv of the lowered module (its input shape, channels, kernel, stride, padding) and how
often it runs; each becomes a one-conv TFLite file through litert-torch (NHWC in and out, as inside the
full model's graph, where the layout pass keeps the folded tensor NHWC) and is timed in this process
alternately with the same torch Conv2d (oneDNN, NCHW), one inference each per round. Prints ms, GFLOP/s
and the ratio per shape, each shape's share of the convs' FLOPs, and the total over one forward pass's
conv calls: what the convs alone cost LiteRT against torch on this CPU. The full model's ratio to eager also carries the
data movement and eager's 3D convs (layer1's temporal taps are one Conv3d in eager, three Conv2d here).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgebench.models.info import count_flops
from edgebench.models.lowering import FoldedConv3d
from edgebench.models.source import example_input, resolve_model
from edgebench.models.source import build_module


def distinct_convs(module: nn.Module, example: torch.Tensor) -> list[tuple[nn.Conv2d, tuple[int, ...], int]]:
    """(conv, input shape, times it runs) for each distinct 2D conv the lowered module calls, in order of
    first use; recorded at FoldedConv3d._conv, where every lowered conv (each summed tap too) is called."""
    seen: dict[tuple, list] = {}
    original = FoldedConv3d._conv

    def recording(self, x, weight, bias):
        key = (tuple(x.shape), tuple(weight.shape), self.stride2d, self.padding2d, self.dilation2d, self.groups)
        if key not in seen:
            conv = nn.Conv2d(x.shape[1], weight.shape[0], tuple(weight.shape[2:]), self.stride2d, self.padding2d,
                             self.dilation2d, self.groups, bias=bias is not None)
            conv.weight.data, conv.bias = weight.detach().clone(), None if bias is None else nn.Parameter(bias.detach())
            seen[key] = [conv.eval(), tuple(x.shape), 0]
        seen[key][2] += 1
        return original(self, x, weight, bias)

    FoldedConv3d._conv = recording
    try:
        with torch.no_grad():
            module(example)
    finally:
        FoldedConv3d._conv = original
    return [tuple(v) for v in seen.values()]


def litert_conv(conv: nn.Conv2d, shape: tuple[int, ...], path: Path, threads: int):
    """The one-conv TFLite file (NHWC in and out) at `path`, loaded in LiteRT's interpreter (XNNPACK), input set."""
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    x = torch.rand(shape).permute(0, 2, 3, 1).contiguous()
    nhwc = litert_torch.to_channel_last_io(conv, args=[0], outputs=[0]).eval()
    with contextlib.redirect_stdout(io.StringIO()):  # litert-torch prints a progress line per stage
        litert_torch.convert(nhwc, (x,)).export(str(path))
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
    return interpreter


def interleaved(fns: list, rounds: int) -> list[float]:
    """Median seconds of each function, one call each per round, the order rotated every round."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for r in range(rounds):
        for i in np.roll(np.arange(len(fns)), r):
            time.sleep(0.05)  # let the other library's worker threads stop spinning
            start = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_mixed")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    ref = resolve_model(opts.model)
    convs = distinct_convs(build_module(ref, lowered=True), example_input(ref))
    if not convs:
        print(f"{ref.name}: the lowered form has no 2D convs (`edgebench info` says what stayed 3D)", file=sys.stderr)
        return 2
    print(f"{ref.name} 2d-lowered: {sum(n for *_, n in convs)} conv calls, {len(convs)} distinct; "
          f"{opts.rounds} interleaved rounds, {opts.threads} threads")
    print(f"{'conv':34} {'runs':>4} {'share':>6} {'torch ms':>9} {'LiteRT ms':>9} {'x torch':>7} "
          f"{'torch GF/s':>10} {'LiteRT GF/s':>11}")
    totals = np.zeros(2)
    with tempfile.TemporaryDirectory(prefix="edgebench-convs-") as tmp, torch.no_grad():
        rows = []
        for i, (conv, shape, runs) in enumerate(convs):
            x = torch.rand(shape)
            interpreter = litert_conv(conv, shape, Path(tmp) / f"conv{i}.tflite", opts.threads)
            seconds = interleaved([lambda c=conv, x=x: c(x), interpreter.invoke], opts.rounds)
            rows.append((conv, shape, runs, seconds, count_flops(conv, x) / 1e9))
        flops = sum(runs * g for _, _, runs, _, g in rows)
        for conv, shape, runs, (t_torch, t_lite), g in rows:
            totals += runs * np.array([t_torch, t_lite])
            name = (f"{conv.in_channels}->{conv.out_channels} {conv.kernel_size[0]}x{conv.kernel_size[1]}"
                    f"/{conv.stride[0]} on {shape[0]}x{shape[2]}x{shape[3]}")
            print(f"{name:34} {runs:4d} {runs * g / flops:6.1%} {t_torch * 1e3:9.1f} {t_lite * 1e3:9.1f} "
                  f"{t_lite / t_torch:7.2f} {g / t_torch:10.0f} {g / t_lite:11.0f}")
    print(f"all convs, run as often as in one forward pass: torch {totals[0] * 1e3:.0f} ms, LiteRT "
          f"{totals[1] * 1e3:.0f} ms, {totals[1] / totals[0]:.2f}x ({flops:.1f} GFLOP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
