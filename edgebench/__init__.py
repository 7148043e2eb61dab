"""edgebench: export, check and benchmark PyTorch models for edge runtimes.

`edgebench.run(...)` and the record classes come from `edgebench.api` (its `__all__`), imported on
first use so that `import edgebench` stays cheap.
"""

import importlib


def __getattr__(name: str):
    api = importlib.import_module("edgebench.api")
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'edgebench' has no attribute {name!r}")
