"""The nightly history store: SQLite under <out> by default, any SQLAlchemy URL (PostgreSQL) for a team."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

from edgebench.config import HistoryConfig
from edgebench.errors import UserError
from edgebench.reports.rows import BOOL_COLUMNS, COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, SERIES, coerce

BUSY_TIMEOUT_S = 60.0
_TYPES = {**{c: Float for c in FLOAT_COLUMNS}, **{c: Integer for c in INT_COLUMNS},
          **{c: Boolean for c in BOOL_COLUMNS}, "reason": Text, "weights": Text}  # fmt: skip

metadata = MetaData()
runs_table = Table(
    "edgebench_runs", metadata,
    Column("run_id", String(200), primary_key=True),
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40)),
    Column("host", String(200)),
    Column("git_commit", String(64)),
    Column("row_count", Integer),
    Column("info", Text),  # small JSON: weights, threads, run folder
)  # fmt: skip
results_table = Table(
    "edgebench_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *[Column(c, _TYPES.get(c, String(200)), nullable=c not in ("run_id", "started_at", *SERIES, "status"))
      for c in COLUMNS],
    Index("ix_edgebench_results_series", *SERIES, "started_at"),
    Index("ix_edgebench_results_run", "run_id"),
)  # fmt: skip


def default_url(out: Path) -> str:
    """sqlite:///<out>/history.sqlite (absolute)."""
    return f"sqlite:///{(Path(out) / 'history.sqlite').resolve()}"


def resolve_url(out: Path, cfg: HistoryConfig | None) -> str:
    return (cfg.url if cfg and cfg.url else None) or default_url(out)


def make_engine(url: str) -> Engine:
    """An engine; for SQLite: WAL journal, a busy timeout, and BEGIN IMMEDIATE on write transactions."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"history url {url!r}: not a database URL (sqlite:///path or postgresql+psycopg://...)") from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as e:
            safe = parsed.render_as_string(hide_password=True)
            raise UserError(f"history url {safe}: database driver missing ({e.name or e}); for PostgreSQL: "
                            "pip install 'psycopg[binary]' and use postgresql+psycopg://user@host/db") from None
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy, not sqlite3, emits BEGIN (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front, so two runs queue on the busy timeout instead of
        # failing with "database is locked" when a read lock cannot be upgraded.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class HistoryStore:
    """Read past rows and commit one run's rows in a single transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._ready = False

    @classmethod
    def open(cls, out: Path, cfg: HistoryConfig | None = None) -> "HistoryStore":
        return cls(resolve_url(out, cfg))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_schema(self) -> None:
        """Create the tables, and add columns a newer COLUMNS list has (an old store keeps working)."""
        if self._ready:
            return
        for attempt in (1, 2):  # two runs creating the tables at once on PostgreSQL: the loser retries once
            try:
                with self.engine.connect().execution_options(write=True) as conn, conn.begin():
                    metadata.create_all(conn)
                    have = {c["name"] for c in inspect(conn).get_columns(results_table.name)}
                    for col in results_table.columns:
                        if col.name not in have:
                            ddl = col.type.compile(dialect=conn.dialect)
                            conn.execute(text(f"ALTER TABLE {results_table.name} ADD COLUMN {col.name} {ddl}"))
                break
            except OperationalError as e:
                raise UserError(f"history store {self._safe_url()}: {e.orig}") from None
            except (IntegrityError, ProgrammingError):
                if attempt == 2:
                    raise
        self._ready = True

    def write_run(self, rows: pd.DataFrame, run_info: dict | None = None) -> int:
        """Replace this run's rows (if any) with `rows`, all in one transaction; returns rows written."""
        self.ensure_schema()
        rows = coerce(rows)
        if rows["run_id"].nunique() > 1:
            raise ValueError("write_run takes the rows of one run")
        if rows.empty:
            return 0
        run_id, started_at = rows["run_id"].iat[0], rows["started_at"].iat[0]
        info = dict(run_info or {})
        records = [_to_db(r) for r in rows[COLUMNS].to_dict("records")]
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            conn.execute(delete(results_table).where(results_table.c.run_id == run_id))
            conn.execute(delete(runs_table).where(runs_table.c.run_id == run_id))
            conn.execute(runs_table.insert().values(
                run_id=run_id, started_at=started_at, ended_at=info.pop("ended_at", None),
                host=info.pop("host", None), git_commit=info.pop("git_commit", None), row_count=len(records),
                info=json.dumps(info, default=str, sort_keys=True)))  # fmt: skip
            conn.execute(results_table.insert(), records)
        return len(records)

    def load(self, model: str | None = None, before: str | None = None, series: tuple | None = None
             ) -> pd.DataFrame:  # fmt: skip
        """Past rows (all columns of COLUMNS), oldest first; optionally one model, one series, or earlier runs."""
        self.ensure_schema()
        t = results_table
        q = select(*[t.c[c] for c in COLUMNS])
        if model:
            q = q.where(t.c.model == model)
        if series:
            q = q.where(*[t.c[c] == v for c, v in zip(SERIES, series)])
        if before:
            q = q.where(t.c.started_at < before)
        q = q.order_by(t.c.started_at, t.c.run_id, t.c.id)
        with self.engine.connect() as conn:
            data = conn.execute(q).mappings().all()
        return coerce(pd.DataFrame([dict(r) for r in data], columns=COLUMNS))

    def runs(self) -> pd.DataFrame:
        """One row per stored run, oldest first."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            data = conn.execute(select(runs_table).order_by(runs_table.c.started_at)).mappings().all()
        return pd.DataFrame([dict(r) for r in data], columns=[c.name for c in runs_table.columns])

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


def _to_db(record: dict) -> dict:
    """NaN/NA -> None; numpy scalars -> Python; NUL in text -> U+FFFD (PostgreSQL text cannot hold NUL)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, str):
            out[k] = v.replace("\x00", "\ufffd")
        elif v is None or pd.isna(v):
            out[k] = None
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = v
    return out
