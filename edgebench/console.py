"""The console shows edgebench's own lines; other libraries' logs and Python warnings go to the run's log file.

coremltools, torch and Prefect log at import and at every step (coremltools' "Failed to load
_MLModelProxy", torch's own stderr handler, Prefect's "Finished in state Completed()"). Records of
loggers outside `edgebench` at WARNING or above are held in memory until the run's folder is known
(`log_to`), then written to <run_dir>/logs/warnings.log, one record per unindented line; the report
counts them (`count_records`).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
from pathlib import Path

WARNINGS_LOG = "warnings.log"
_PENDING_MAX = 1000  # records held before a run folder exists; more are counted, not kept


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "edgebench" or record.name.startswith("edgebench.")


class ConsoleHandler(logging.StreamHandler):
    """edgebench's own warnings on stderr as `warning: ...`; everything else only when verbose."""

    def __init__(self) -> None:
        super().__init__()
        self.verbose = False
        self.seen: set[str] = set()  # each of our warnings once, however many steps resolve the same model
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    @property
    def stream(self):  # the current sys.stderr, so test capture and redirection see every line
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        if not _ours(record) or record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        with self.lock:
            new = message not in self.seen
            self.seen.add(message)
        return new

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}" if _ours(record) else super().format(record)


class RunLogHandler(logging.Handler):
    """Every other logger's warnings: kept until `attach`, then appended to the run's warnings.log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.path: Path | None = None
        self.pending: list[str] = []
        self._write_lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        return not _ours(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).replace("\n", "\n    ")  # continuation lines indented: one record, one line start
        except Exception:  # noqa: BLE001 - a malformed third-party record must not break the run
            self.handleError(record)
            return
        with self._write_lock:
            if self.path is None:
                if len(self.pending) < _PENDING_MAX:
                    self.pending.append(line)
                return
            with self.path.open("a") as f:
                f.write(line + "\n")

    def attach(self, path: Path) -> None:
        """From now on write to `path`, starting with what was held."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            with path.open("a") as f:
                f.writelines(line + "\n" for line in self.pending)
            self.pending, self.path = [], path


def _handler(cls):
    return next((h for h in logging.getLogger().handlers if type(h) is cls), None)


def setup(verbose: bool = False) -> None:
    """Route logging for a command-line process: our warnings on the console, the rest to the run log."""
    root = logging.getLogger()
    console = _handler(ConsoleHandler) or ConsoleHandler()
    console.verbose = verbose
    if console not in root.handlers:
        root.addHandler(console)  # a formatted handler on the root: Prefect then leaves the root alone
    _run_log_handler()
    if not root.level or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the run log
    _adopt_torch_logs()


def set_verbose(verbose: bool) -> None:
    """Show every library's log records on the console as well (for debugging)."""
    handler = _handler(ConsoleHandler)
    if handler is not None:
        handler.verbose = verbose


def _run_log_handler() -> RunLogHandler:
    handler = _handler(RunLogHandler)
    if handler is None:
        handler = RunLogHandler()
        logging.getLogger().addHandler(handler)
    return handler


def log_to(run_dir: str | Path) -> Path:
    """Send other libraries' warnings (held ones first) to <run_dir>/logs/warnings.log; returns that path."""
    path = Path(run_dir) / "logs" / WARNINGS_LOG
    _run_log_handler().attach(path)
    logging.captureWarnings(True)
    _adopt_torch_logs()  # also in a worker's flow run, where `setup` was never called
    return path


def count_records(run_dir: str | Path) -> int:
    """How many records the run's warnings.log holds (0 when there is none)."""
    try:
        lines = (Path(run_dir) / "logs" / WARNINGS_LOG).read_text(errors="replace").splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if line and not line[0].isspace())


def _adopt_torch_logs() -> None:
    """torch gives its loggers a stderr handler of its own: drop it and let records reach the root's handlers."""
    if "torch" not in sys.modules:
        if not any(isinstance(f, _AfterTorchImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterTorchImport())
        return
    for name in ["torch", *[n for n in logging.Logger.manager.loggerDict if n.startswith("torch.")]]:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if getattr(h, "_torch_logging_internal_handler", False)]:
            logger.removeHandler(h)
        logger.propagate = True


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Runs `_adopt_torch_logs` right after `import torch` completes (it is imported lazily, if at all)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_adopt(module):
            exec_module(module)
            _adopt_torch_logs()

        spec.loader.exec_module = exec_then_adopt
        return spec
