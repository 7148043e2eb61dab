"""History store: one transaction per run, WAL SQLite, concurrent writers, interrupted writes leave nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import event

from edgebench.config import HistoryConfig
from edgebench.errors import UserError
from edgebench.reports.history import HistoryStore, default_url, resolve_url
from edgebench.reports.rows import COLUMNS, flatten
from tests.synthetic_runs import synthetic_run

ROOT = Path(__file__).resolve().parents[2]


def rows(night: int) -> pd.DataFrame:
    return flatten(synthetic_run(night))


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_round_trip_keeps_columns_types_and_order(tmp_path):
    with HistoryStore.open(tmp_path) as store:
        for n in range(3):
            assert store.write_run(rows(n)) == 6
        h = store.load()
    assert list(h.columns) == COLUMNS
    assert len(h) == 18 and h["run_id"].nunique() == 3
    assert list(h["started_at"]) == sorted(h["started_at"])
    original = rows(2)
    back = h[h["run_id"] == original["run_id"].iat[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back, original, check_exact=False)


def test_default_url_and_config_url(tmp_path):
    assert default_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/history.sqlite"
    assert resolve_url(tmp_path, HistoryConfig(url="sqlite:///x.db")) == "sqlite:///x.db"
    with pytest.raises(UserError, match="not a database URL"):
        HistoryStore("not a url")
    with pytest.raises(UserError, match="psycopg"):  # a driver that is not installed: a one-line hint
        HistoryStore("postgresql+psycopg2://user:secret@db.example/edgebench")


def test_old_store_gains_new_columns(tmp_path):
    db = tmp_path / "history.sqlite"
    with sqlite3.connect(db) as conn:  # a store written before iqr_ms and fps existed
        cols = ", ".join(f"{c} TEXT" for c in COLUMNS if c not in ("iqr_ms", "fps"))
        conn.execute(f"CREATE TABLE edgebench_results (id INTEGER PRIMARY KEY, {cols})")
    with HistoryStore.open(tmp_path) as store:
        store.write_run(rows(0))
        assert store.load()["iqr_ms"].notna().sum() == 4  # the rows with a latency


def test_sqlite_uses_wal(tmp_path):
    with HistoryStore.open(tmp_path) as store:
        store.write_run(rows(0))
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rewriting_a_run_replaces_its_rows(tmp_path):
    with HistoryStore.open(tmp_path) as store:
        store.write_run(rows(0))
        store.write_run(rows(0).iloc[:2])
        assert len(store.load()) == 2
        assert list(store.runs()["row_count"]) == [2]


def test_filters(tmp_path):
    with HistoryStore.open(tmp_path) as store:
        for n in range(3):
            store.write_run(rows(n))
        assert len(store.load(model="nope")) == 0
        assert len(store.load(series=("resnet_mixed", "onnx", "fp32", "onnxruntime", "local"))) == 3
        assert store.load(before=rows(1)["started_at"].iat[0])["run_id"].nunique() == 1


def test_exception_mid_transaction_leaves_no_partial_rows(tmp_path):
    with HistoryStore.open(tmp_path) as store:
        store.write_run(rows(0))

        def boom(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
                raise RuntimeError("interrupted after the rows went in")

        event.listen(store.engine, "after_cursor_execute", boom)
        with pytest.raises(RuntimeError, match="interrupted"):
            store.write_run(rows(1))
        event.remove(store.engine, "after_cursor_execute", boom)
        h = store.load()
        assert set(h["run_id"]) == set(rows(0)["run_id"])  # neither the run row nor any result row of night 1
        assert len(store.runs()) == 1
        store.write_run(rows(1))  # and the store still works
        assert store.load()["run_id"].nunique() == 2


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.synthetic_runs import synthetic_run
    from edgebench.reports.history import HistoryStore
    from edgebench.reports.rows import flatten
    out, first, n, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    runs = [flatten(synthetic_run(night + 100 * first, model=f"m{first}")) for night in range(n)]
    while not go.exists():
        time.sleep(0.01)
    with HistoryStore.open(out) as store:
        from sqlalchemy import event

        @event.listens_for(store.engine, "after_cursor_execute")
        def hold(conn, cursor, statement, *args):  # hold the write lock a moment: the other writer must wait
            if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
                time.sleep(0.03)

        for df in runs:
            store.write_run(df)
    """
)


def test_two_processes_writing_at_once_do_not_corrupt(tmp_path):
    go = tmp_path / "go"  # no schema yet: both writers also race to create it
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(i), "15", str(go)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]  # fmt: skip
    time.sleep(1.0)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    db = tmp_path / "history.sqlite"
    assert count(db, "SELECT count(*) FROM edgebench_runs") == 30
    assert count(db, "SELECT count(*) FROM edgebench_results") == 30 * 6
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        order = [m for (m,) in conn.execute("SELECT model FROM edgebench_results GROUP BY run_id ORDER BY min(id)")]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert switches >= 1


KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sqlalchemy import event
    from tests.synthetic_runs import synthetic_run
    from edgebench.reports.history import HistoryStore
    from edgebench.reports.rows import flatten
    out, marker = Path(sys.argv[1]), Path(sys.argv[2])
    store = HistoryStore.open(out)

    @event.listens_for(store.engine, "after_cursor_execute")
    def hang(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
            marker.touch()  # rows are in, commit not yet: the parent kills us here
            time.sleep(60)

    store.write_run(flatten(synthetic_run(5)))
    """
)


def test_process_killed_mid_transaction_leaves_no_partial_rows(tmp_path):
    marker = tmp_path / "inside"
    with HistoryStore.open(tmp_path) as store:
        store.write_run(rows(0))
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(tmp_path), str(marker)], cwd=ROOT)
    try:
        deadline = time.time() + 60
        while not marker.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the child never reached the insert"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    with HistoryStore.open(tmp_path) as store:
        assert store.load()["run_id"].nunique() == 1 and len(store.runs()) == 1
        store.write_run(rows(5))  # the lock died with the process
        assert store.load()["run_id"].nunique() == 2
