"""Print this host's matrix-multiply limit per precision, and every kernel that was tried for it.

    .venv/bin/python benchmarks/peak.py [--threads 2] [--fresh]

The figures a run's `% peak` column is taken against (edgebench/benchmarks/peak.py): cached per host,
CPU, ISA flags, threads and library versions; `--fresh` measures again and replaces the cache (take
it on a quiet host: a busy one lowers every kernel alike, and the cache keeps what it saw).
"""

from __future__ import annotations

import argparse
import sys

from edgebench.benchmarks.peak import PEAK_OF, cache_path, describe_limit, host_key, host_peak
from edgebench.runtimes.base import resolve_threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="0: every core (as a run with threads: 0)")
    parser.add_argument("--fresh", action="store_true", help="measure again and replace the cached figures")
    opts = parser.parse_args()
    threads = resolve_threads(opts.threads)
    peak = host_peak(threads, refresh=opts.fresh)
    if "error" in peak:
        print(f"peak: {peak['error']}", file=sys.stderr)
        return 1
    print(f"{peak['cpu']} ({' '.join(peak['isa'])}), {threads} threads, {peak['size']}^3 products")
    print(f"{'precision':9} {'GMAC/s':>8}  kernel")
    for c in peak["candidates"]:
        figure = f"{c['gmacs']:8.1f}" if "gmacs" in c else f"{'failed':>8}"
        best = " <- peak" if peak["peaks"].get(c["precision"], {}).get("kernel") == c["kernel"] else ""
        print(f"{c['precision']:9} {figure}  {c['kernel']}{best}{'  ' + c['error'] if 'error' in c else ''}")
    print(f"rows held against: {', '.join(f'{p} -> {k}' for p, k in PEAK_OF.items())}")
    print(f"limit: {describe_limit(peak)}")
    print(f"cache: {cache_path(host_key(threads))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
