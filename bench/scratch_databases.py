"""PostgreSQL databases a benchmark makes for itself beside others on a server, and drops.

A benchmark measures on empty databases of its own, named after its process, so that
it never touches the test suite's or another run's; ``server`` is a URL without a
database name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.script import BenchError

DROP = 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
CREATE = 'CREATE DATABASE "{name}"'


def run_for_each(server: str, names: Sequence[str], statements: Sequence[str]) -> None:
    """``statements`` for each of ``names``, in the server's maintenance database (a
    database cannot be created or dropped from inside itself, nor in a transaction)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in names:
                for statement in statements:
                    connection.execute(sa.text(statement.format(name=name)))
    finally:
        engine.dispose()


def create_databases(server: str, names: Sequence[str]) -> None:
    """Empty databases ``names``; ones left by an earlier run that died are dropped first."""
    import sqlalchemy as sa

    try:
        run_for_each(server, names, [DROP, CREATE])
    except sa.exc.OperationalError as exc:
        raise BenchError(f"PostgreSQL is not reachable at {server}: {exc.orig}") from None


def drop_databases(server: str, names: Sequence[str]) -> None:
    """Drop them; a failure is told, not raised, so that the rest of the cleanup runs."""
    import sqlalchemy as sa

    try:
        run_for_each(server, names, [DROP])
    except sa.exc.SQLAlchemyError as exc:
        print(f"could not drop the databases {list(names)}: {exc}", file=sys.stderr)
