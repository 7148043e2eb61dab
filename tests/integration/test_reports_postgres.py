"""History store on a real PostgreSQL server (throwaway cluster on 127.0.0.1): writer path, same findings as SQLite."""

from __future__ import annotations

import glob
import itertools
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from sqlalchemy import event

from edgebench.config import HistoryConfig
from edgebench.records import RUNTIME_FAILED
from edgebench.reports.history import HistoryStore, default_url
from edgebench.reports.regressions import BROKE, REGRESSION
from edgebench.reports.rows import flatten
from edgebench.reports.writer import history_table, read_results_csv, write_run_reports
from tests.synthetic_runs import SERIES_P50, TEN_PCT_3_NOISE, synthetic_run

TS = ("torchscript", "fp32", "torchscript")
ORT = ("onnx", "fp32", "onnxruntime")
LITE = ("tflite", "fp32", "litert")
QUIET = [0.004, -0.006, 0.01, -0.002, 0.0, 0.007, -0.01, 0.003, -0.004, 0.20]  # +-1 %, then +20 %
NOISY = [0.08, -0.08, -0.08, 0.02, -0.08, 0.08, -0.04, 0.06, -0.06, 0.08]  # +-8 %, no real change


def pg_bin() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb; a clear failure when the server is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0]))
    if not found:
        pytest.fail("PostgreSQL server not installed: no /usr/lib/postgresql/*/bin/initdb (the set-up installs "
                    "the Debian package 'postgresql': apt-get install -y postgresql)", pytrace=False)  # fmt: skip
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_cluster():
    """A throwaway cluster (trust auth, 127.0.0.1 and a socket in its own temp dir); yields (host, port)."""
    bindir = pg_bin()
    as_root = os.geteuid() == 0  # PostgreSQL refuses to run as root: run it as the postgres system user
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="edgebench-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        if as_root:
            shutil.chown(base, "postgres", "postgres")

        def run(*cmd):
            p = subprocess.run([*prefix, *map(str, cmd)], capture_output=True, text=True, timeout=60)
            if p.returncode:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                pytest.fail(f"{Path(str(cmd[0])).name} failed ({p.returncode}): {p.stderr}{p.stdout}\n{server_log}")

        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync")  # fmt: skip
        port = free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off")  # fmt: skip
        started = True
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "-o", opts, "start")
        yield "127.0.0.1", port
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


_db_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty database on the cluster: its SQLAlchemy URL."""
    host, port = pg_cluster
    name = f"edgebench_t{next(_db_numbers)}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"


def rows(night: int) -> pd.DataFrame:
    return flatten(synthetic_run(night))


def test_server_is_real_postgresql(pg_url):
    with HistoryStore(pg_url) as store, store.engine.connect() as conn:
        assert conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
        assert conn.exec_driver_sql("SHOW server_version").scalar()[:2].isdigit()


def test_writer_path_writes_two_runs_and_reads_them_back(pg_url, tmp_path):
    cfg = HistoryConfig(url=pg_url)
    paths = [write_run_reports(synthetic_run(n), tmp_path, cfg, publish_prefect=False) for n in (0, 1)]
    assert paths[0].history_url == pg_url  # no password here, so shown in full
    assert not (tmp_path / "history.sqlite").exists()  # nothing fell back to SQLite
    with HistoryStore(pg_url) as store:
        h, runs = store.load(), store.runs()
    assert len(h) == 12 and list(h["run_id"].unique()) == [p.run_dir.name for p in paths]
    for p in paths:  # what PostgreSQL gives back is the CSV as written: values and dtypes
        back = h[h["run_id"] == p.run_dir.name].reset_index(drop=True)
        pd.testing.assert_frame_equal(back, read_results_csv(p.results_csv), check_exact=False)
    assert back["baseline_p50_ms"].notna().sum() == 4  # night 1 got its baseline from night 0, read from PostgreSQL
    assert list(runs["row_count"]) == [6, 6] and runs["info"].str.contains("run_dir").all()


def test_regressions_from_postgresql_equal_regressions_from_sqlite(pg_url, tmp_path):
    cfg_pg, cfg_lite = (TEN_PCT_3_NOISE.model_copy(update={"url": url}) for url in (pg_url, default_url(tmp_path / "lite")))
    nights = [synthetic_run(n, p50={TS: SERIES_P50[TS] * (1 + QUIET[n]), ORT: SERIES_P50[ORT] * (1 + NOISY[n])},
                            overrides={LITE: {"latency_status": RUNTIME_FAILED, "latency_reason": "killed by SIGSEGV"}}
                            if n == 9 else None) for n in range(10)]  # fmt: skip
    results = {}
    for name, cfg in (("pg", cfg_pg), ("lite", cfg_lite)):
        with HistoryStore(cfg.url) as store:
            for run in nights[:9]:
                store.write_run(flatten(run))
        paths = write_run_reports(nights[9], tmp_path / name, cfg, publish_prefect=False)
        with HistoryStore(cfg.url) as store:
            history = store.load()
        results[name] = (paths, history, history_table(tmp_path / name, history_cfg=cfg))
    (pg, pg_hist, pg_table), (lite, lite_hist, lite_table) = results["pg"], results["lite"]
    kinds = {(f.kind, f.series[1:4]) for f in pg.findings}
    assert (REGRESSION, TS) in kinds and (BROKE, LITE) in kinds and (REGRESSION, ORT) not in kinds
    assert [f.to_dict() for f in pg.findings] == [f.to_dict() for f in lite.findings]
    assert pg.results_csv.read_bytes() == lite.results_csv.read_bytes()
    pd.testing.assert_frame_equal(pg_hist, lite_hist)  # 60 rows, exactly: same values, same dtypes
    pd.testing.assert_frame_equal(pg_table, lite_table)


def test_exception_mid_transaction_leaves_no_partial_rows(pg_url):
    with HistoryStore(pg_url) as store:
        store.write_run(rows(0))

        def boom(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
                raise RuntimeError("interrupted after the rows went in")

        event.listen(store.engine, "after_cursor_execute", boom)
        with pytest.raises(RuntimeError, match="interrupted"):
            store.write_run(rows(1))
        event.remove(store.engine, "after_cursor_execute", boom)
        assert set(store.load()["run_id"]) == set(rows(0)["run_id"]) and len(store.runs()) == 1
        store.write_run(rows(1))  # and the store still works
        assert store.load()["run_id"].nunique() == 2


def test_nul_byte_in_a_reason_does_not_lose_the_night(pg_url):
    df = rows(3)
    df.loc[0, "reason"] = "export: garbage \x00 from a converter"  # PostgreSQL text cannot hold NUL
    with HistoryStore(pg_url) as store:
        assert store.write_run(df) == 6
        assert store.load()["reason"].iat[0] == "export: garbage \ufffd from a converter"


# Writers are fresh spawned interpreters, as separate runs of the pipeline would be. (Forking this
# process broke once a Prefect test harness had run in it: inherited threads and loops.)
SPAWN = multiprocessing.get_context("spawn")


def hang_mid_write(url: str, marker: Path) -> None:
    store = HistoryStore(url)

    @event.listens_for(store.engine, "after_cursor_execute")
    def hang(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
            marker.touch()  # rows are in, commit not yet: the parent kills us here
            time.sleep(60)

    store.write_run(rows(5))


def test_process_killed_mid_transaction_leaves_no_partial_rows(pg_url, tmp_path):
    marker = tmp_path / "inside"
    with HistoryStore(pg_url) as store:
        store.write_run(rows(0))
    child = SPAWN.Process(target=hang_mid_write, args=(pg_url, marker))
    child.start()
    try:
        deadline = time.time() + 60
        while not marker.exists() and child.is_alive() and time.time() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the child never reached the insert"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    with HistoryStore(pg_url) as store:
        assert store.load()["run_id"].nunique() == 1 and len(store.runs()) == 1
        store.write_run(rows(5))  # the server rolled the dead connection back and freed its locks
        assert store.load()["run_id"].nunique() == 2


def write_nights(url: str, first: int, n: int, start) -> None:
    runs = [flatten(synthetic_run(night + 100 * first, model=f"m{first}")) for night in range(n)]
    with HistoryStore(url) as store:

        @event.listens_for(store.engine, "after_cursor_execute")
        def hold(conn, cursor, statement, *args):  # keep each transaction open a moment: the writers overlap
            if statement.lstrip().upper().startswith("INSERT INTO EDGEBENCH_RESULTS"):
                time.sleep(0.03)

        start.wait(60)  # both writers ready: they begin together
        for df in runs:
            store.write_run(df)


def test_two_processes_writing_at_once_both_land(pg_url):
    start = SPAWN.Barrier(2)  # an empty database: both writers also race to create the tables
    procs = [SPAWN.Process(target=write_nights, args=(pg_url, i, 10, start)) for i in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0], "a writer failed (its traceback is in the captured stderr)"
    with HistoryStore(pg_url) as store:
        h, runs = store.load(), store.runs()
    assert len(runs) == 20 and list(runs["row_count"].unique()) == [6]
    assert len(h) == 20 * 6 and h.groupby("model")["run_id"].nunique().to_dict() == {"m1": 10, "m2": 10}
    assert not h.duplicated(["run_id", "format", "precision", "runtime", "device"]).any()
    with HistoryStore(pg_url) as store, store.engine.connect() as conn:  # the writers did overlap
        order = [m for (m,) in conn.exec_driver_sql(
            "SELECT model FROM edgebench_results GROUP BY run_id, model ORDER BY min(id)")]  # fmt: skip
    assert sum(a != b for a, b in zip(order, order[1:])) >= 1


PAIRED_COLUMNS = ["ratio_vs_eager", "ratio_low", "ratio_high", "baseline_ratio", "delta_ratio_pct", "cold_start_ms",
                  "trimmed_mean_ms", "cv", "stability", "stable", "host_key"]  # what issue 26 added


def old_store(url: str, nights: range) -> None:
    """A history written before the paired columns existed: their tables without those columns, and its nights."""
    from sqlalchemy import Column, MetaData, Table, create_engine

    from edgebench.reports.history import _to_db, results_table, runs_table

    meta = MetaData()
    runs_table.to_metadata(meta)
    old = Table(results_table.name, meta, *[Column(c.name, c.type, primary_key=c.primary_key)
                                            for c in results_table.columns if c.name not in PAIRED_COLUMNS])
    engine = create_engine(url)
    with engine.begin() as conn:
        meta.create_all(conn)
        for n in nights:
            df = flatten(synthetic_run(n))
            conn.execute(old.insert(), [_to_db(r) for r in df[[c.name for c in old.columns if c.name != "id"]]
                                        .to_dict("records")])  # fmt: skip
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_old_store_is_migrated_and_paired_nights_are_judged_on_ratios(backend, pg_url, tmp_path):
    url = pg_url if backend == "postgresql" else default_url(tmp_path)
    old_store(url, range(0, 3))
    eager = ("pytorch", "fp32", "torch")
    drift = [0.0, 0.3, -0.2, 0.25, -0.3, 0.2, 0.35]  # host speed by night: the p50s swing, the ratios hold
    cfg = HistoryConfig(url=url)
    with HistoryStore(url) as store:
        for n in range(3, 9):
            store.write_run(flatten(synthetic_run(n, paired=True, p50={k: v * (1 + drift[n % 7]) for k, v in
                                                                     SERIES_P50.items() if v})))  # fmt: skip
    slow = {k: v * 0.75 for k, v in SERIES_P50.items() if v}  # a fast night for the host ...
    slow[ORT] = slow[eager] * SERIES_P50[ORT] / SERIES_P50[eager] * 1.25  # ... with ONNX Runtime 25 % slower against eager
    paths = write_run_reports(synthetic_run(9, paired=True, p50=slow), tmp_path / "out", cfg, publish_prefect=False)
    assert [(f.kind, f.series[1:4]) for f in paths.findings if f.kind == REGRESSION] == [(REGRESSION, ORT)]
    with HistoryStore(url) as store:
        h = store.load()
    assert set(PAIRED_COLUMNS) <= set(h.columns) and h["run_id"].nunique() == 10
    old = h[h["run_id"].str.endswith(("n00", "n01", "n02"))]
    assert old["ratio_vs_eager"].isna().all() and (old["host_key"] == "").all()  # old nights keep their values
    new = h[~h.index.isin(old.index) & (h["runtime"] == "onnxruntime")]
    assert new["ratio_vs_eager"].notna().all() and new["stable"].all() and new["host_key"].nunique() == 1
