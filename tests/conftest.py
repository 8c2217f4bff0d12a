"""Test harness: a real stack (Prefect server, runner, web service) on free ports, a real
SMTP server in this process, and Dealflow's real database.

Prefect reads its settings on first import, so the environment is set here, before any
test module imports Prefect.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from harness.ports import free_port

DATA_DIR = Path(tempfile.mkdtemp(prefix="dealflow-test-"))
# The stack reads a copy of the default matrix, so that a test can add a delegation.
MATRIX = DATA_DIR / "matrix.yaml"
MATRIX.write_text((Path(__file__).resolve().parent.parent / "config" / "matrix.yaml").read_text())
PORTS = {"prefect": free_port(), "web": free_port(), "smtp": free_port()}
SMTP_USER = "dealflow-mailer"
os.environ.update(
    {
        "PREFECT_API_URL": f"http://127.0.0.1:{PORTS['prefect']}/api",
        "PREFECT_HOME": str(DATA_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DEALFLOW_DATA_DIR": str(DATA_DIR),
        "DEALFLOW_MATRIX_PATH": str(MATRIX),
        "DEALFLOW_PREFECT_API_URL": f"http://127.0.0.1:{PORTS['prefect']}/api",
        "DEALFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{PORTS['web']}",
        "DEALFLOW_SMTP_HOST": "127.0.0.1",
        "DEALFLOW_SMTP_PORT": str(PORTS["smtp"]),
        # The test SMTP server takes mail only after a login, so the password is used.
        "DEALFLOW_SMTP_USER": SMTP_USER,
        # Deal intake over HTTP: one API key and one webhook secret
        # (tests/web/test_intake_api.py).
        "DEALFLOW_INTAKE_API_KEYS": '{"test-crm": "key-for-tests-0123456789"}',
        "DEALFLOW_INTAKE_WEBHOOK_SECRETS": '{"test-webhook": "secret-for-tests-0123456789"}',
        # Flow runs beat every 30 s in the test stack: a run quiet for 75 s has lost its
        # process (tests/e2e/test_worker_kills.py).
        "DEALFLOW_STALLED_RUN_SECONDS": "75",
        # The kill test kills a worker every few seconds, and mostly while it starts the
        # runs just brought back: one run may lose its process a dozen times. The limit
        # (5 by default) is for runs that break their process themselves.
        "DEALFLOW_MAX_RUN_RECOVERIES": "20",
        # Every test opens links from this one address, the fuzzing ones hundreds a
        # minute: the limit is tested on a web service of its own (tests/web/test_rate_limits.py).
        "DEALFLOW_LINK_REQUESTS_PER_MINUTE": "100000",
    }
)
# DEALFLOW_TEST_STACK=postgres runs the stack on the production path: Prefect's server and
# Dealflow's database on PostgreSQL instead of SQLite.
STACK_ON_POSTGRES = os.environ.get("DEALFLOW_TEST_STACK") == "postgres"
if STACK_ON_POSTGRES:
    # The production path locks its Prefect API (docs/deployment.md): this process, the
    # CLI it runs and every process of the stack send the credentials.
    os.environ["PREFECT_API_AUTH_STRING"] = f"dealflow-ops:{secrets.token_hex(16)}"
POSTGRES_URL = os.environ.get(
    "DEALFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Secrets the stack is given so that tests/e2e/test_secrets.py can look for them where
# they must never appear. A server that trusts local logins ignores the database
# password.
TEST_SECRETS = {
    "signing secret": f"signing-{secrets.token_hex(12)}",
    "SMTP password": f"smtp-{secrets.token_hex(12)}",
    "finance password": f"finance-{secrets.token_hex(12)}",
}
os.environ.update(
    {
        "DEALFLOW_SIGNING_SECRET": TEST_SECRETS["signing secret"],
        "DEALFLOW_SMTP_PASSWORD": TEST_SECRETS["SMTP password"],
        "DEALFLOW_FINANCE_USERS": f'{{"finance": "{TEST_SECRETS["finance password"]}"}}',
    }
)
if "@" in POSTGRES_URL and ":" not in POSTGRES_URL.split("://", 1)[1].split("@", 1)[0]:
    TEST_SECRETS["database password"] = f"db-{secrets.token_hex(12)}"
    POSTGRES_URL = POSTGRES_URL.replace("@", f":{TEST_SECRETS['database password']}@", 1)
# Each test session has databases of its own, so that two sessions (two checkouts, or CI
# beside a developer) never drop each other's data.
_SESSION = f"{os.getpid()}"
POSTGRES_SERVER = POSTGRES_URL.rsplit("/", 1)[0]
STACK_DATABASES = {
    "dealflow": f"dealflow_e2e_{_SESSION}",
    "prefect": f"prefect_e2e_{_SESSION}",
    # The credentialed fuzz's own (tests/e2e/test_hostile_input.py).
    "fuzz": f"dealflow_fuzz_{_SESSION}",
}
UNIT_DATABASE = f"dealflow_test_{_SESSION}"
if STACK_ON_POSTGRES:
    os.environ["DEALFLOW_DATABASE_URL"] = f"{POSTGRES_SERVER}/{STACK_DATABASES['dealflow']}"
else:
    os.environ.pop("DEALFLOW_DATABASE_URL", None)

import email  # noqa: E402
import email.policy  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from email.message import EmailMessage  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from models.settings import get_settings  # noqa: E402
from tests.browser import browser  # noqa: E402, F401  (the real browser fixture, for every module)


class Inbox:
    """What the SMTP server received: parsed messages and their envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, bool]] = []  # (user, accepted), in order
        self.accepted_users = {SMTP_USER}
        self._changed = threading.Condition()

    def check_login(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept Dealflow's SMTP user with the stack's password, nobody else (a test
        may accept another user name for a while: ``accepted_users``)."""
        if not isinstance(auth_data, LoginPassword):
            self.logins.append(("?", False))
            return AuthResult(success=False, handled=False)
        user, password = (
            value.decode() if isinstance(value, bytes) else str(value)
            for value in (auth_data.login, auth_data.password)
        )
        accepted = user in self.accepted_users and password == TEST_SECRETS["SMTP password"]
        self.logins.append((user, accepted))
        return AuthResult(success=accepted, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return "250 OK"

    def matching(self, predicate: Callable[[EmailMessage], bool]) -> list[EmailMessage]:
        with self._changed:
            return [m for m in self.messages if predicate(m)]

    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 90
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [str(m["Subject"]) for m in self.messages]
                    raise AssertionError(f"no such email within {timeout}s; received: {subjects}")
                self._changed.wait(remaining)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep the stack's data and logs only when something failed, to read them."""
    _drop_databases([*STACK_DATABASES.values(), UNIT_DATABASE])
    if exitstatus == 0:
        shutil.rmtree(DATA_DIR, ignore_errors=True)
    else:
        print(f"\nThe test stack's data and logs are kept in {DATA_DIR}")


class SmtpServer:
    """The SMTP server the stack sends to; a test may take it down and bring it back."""

    def __init__(self, handler: Inbox, port: int) -> None:
        self.handler, self.port = handler, port
        self._controller: Controller | None = None

    def start(self) -> None:
        # A stopped controller's event loop is closed: each start is a new server.
        # Mail only after a login (plain text is fine on the loopback of a test).
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.handler.check_login,
            auth_required=True,
            auth_require_tls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(Inbox(), PORTS["smtp"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def inbox(smtp_server: SmtpServer) -> Inbox:
    return smtp_server.handler


@pytest.fixture(scope="session")
def stack(inbox: Inbox) -> Iterator[Any]:
    from dealflow.stack.config import StackConfig
    from dealflow.stack.local import Stack

    config = StackConfig(
        data_dir=DATA_DIR,
        prefect_port=PORTS["prefect"],
        web_port=PORTS["web"],
        smtp_port=PORTS["smtp"],
        mail_catcher=False,
    )
    if STACK_ON_POSTGRES:
        _fresh_databases(POSTGRES_SERVER, STACK_DATABASES.values())
        config.database_url = f"{POSTGRES_SERVER}/{STACK_DATABASES['dealflow']}"
        config.prefect_database_url = (
            f"{POSTGRES_SERVER.replace('+psycopg', '+asyncpg')}/{STACK_DATABASES['prefect']}"
        )
        # The production path: prefect.yaml deployed to a process work pool, two workers,
        # the web service as two processes.
        config.workers = 2
        config.web_processes = 2
        config.prefect_auth = os.environ["PREFECT_API_AUTH_STRING"]
    with Stack(config) as running:
        yield running


@pytest.fixture
def web_service(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a web service of the test's own with some settings changed; its base URL."""
    from tests.support import WebServices

    services = WebServices(tmp_path)
    yield services.start
    services.stop()


@pytest.fixture(scope="module")
def module_web_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """As ``web_service``, for all tests of a module."""
    from tests.support import WebServices

    services = WebServices(tmp_path_factory.mktemp("web"))
    yield services.start
    services.stop()


@pytest.fixture(scope="session")
def docs_web_service(stack: Any) -> Iterator[str]:
    """A web service on the stack's settings that also serves the API's schema and its
    documentation pages (DEALFLOW_API_DOCS, off by default); its base URL. Its log is
    in the stack's data folder, where tests/e2e/test_secrets.py looks for leaks."""
    from tests.support import WebServices

    (DATA_DIR / "docs-web").mkdir(exist_ok=True)
    services = WebServices(DATA_DIR / "docs-web")
    yield services.start(DEALFLOW_API_DOCS="true")
    services.stop()


def _fresh_databases(server: str, names: Iterable[str]) -> None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        if os.environ.get("DEALFLOW_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {server}: {exc.orig}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from dealflow.infra.db import upgrade

    url = f"sqlite:///{tmp_path / 'dealflow.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh schema-migrated PostgreSQL database; skipped only when not required."""
    from dealflow.infra.db import upgrade

    _fresh_databases(POSTGRES_SERVER, [UNIT_DATABASE])
    url = f"{POSTGRES_SERVER}/{UNIT_DATABASE}"
    upgrade(url)
    return url


def _drop_databases(names: Iterable[str]) -> None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    except sa.exc.OperationalError:
        pass  # no server, nothing of ours on it


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Dealflow's settings pointed at a migrated database of each kind."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    if request.param == "postgres":
        _truncate(url)
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _truncate(url: str) -> None:
    import sqlalchemy as sa

    from models.tables import Base

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
