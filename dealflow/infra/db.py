"""Connections to Dealflow's database, and its migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

from models.settings import PROJECT_ROOT, get_settings

if TYPE_CHECKING:
    from alembic.config import Config

_engines: dict[str, Engine] = {}


def _prepare_sqlite(engine: Engine) -> None:
    # Several processes write (the web service and every flow-run process): WAL lets
    # readers go on, and BEGIN IMMEDIATE makes a writer queue on the busy timeout
    # instead of failing when it upgrades a read lock.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().resolved_database_url
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            _prepare_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        _engines[url] = engine
    return engine


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One short transaction: committed on success, rolled back on any error."""
    with Session(get_engine(url), expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def bookkeeping_connection(url: str | None = None) -> Iterator[Connection]:
    """A connection for many small units of work, each recording what was just done
    outside the database (an email handed to SMTP); call ``commit()`` after each.

    On PostgreSQL every statement commits by itself, without waiting for the disk
    (autocommit, ``synchronous_commit`` off): a crash of ours loses none of them, a crash
    of the database server may lose its last fraction of a second of them, and the
    outbox then redoes that work (the same emails again, recognisable by their
    Message-ID). Waiting for the disk cost about ten times the statement itself.
    SQLite in WAL mode with ``synchronous=NORMAL`` already commits so.
    """
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        with engine.connect() as connection:
            yield connection
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield connection
        finally:
            # The connection goes back to the pool: its next user waits for the disk.
            try:
                connection.exec_driver_sql("RESET synchronous_commit")
            except Exception:
                connection.invalidate()


def alembic_config(url: str | None = None) -> Config:
    # Alembic is imported here only: every flow-run process imports this module, and
    # start-up time is resume latency.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # The config is an INI file in memory: "%" starts an interpolation there, and a
    # percent-encoded password is full of them.
    url = url or get_settings().resolved_database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None) -> None:
    """Bring the database to the newest schema (creates the SQLite file if needed)."""
    from alembic import command

    url = url or get_settings().resolved_database_url
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
