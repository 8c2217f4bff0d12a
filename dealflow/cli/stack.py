"""``dealflow stack up``: the local stack in the foreground; and the commands of its parts
(registering the deployments, the runner, the mail catcher)."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dealflow.cli.app import Group
from dealflow.cli.options import fail
from models.settings import get_settings

if TYPE_CHECKING:
    from dealflow.stack.config import StackConfig
    from dealflow.stack.local import Stack

stack_app = Group(help="The local stack on embedded defaults.")


@stack_app.command("up")
def stack_up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the stack keeps its data (default: DEALFLOW_DATA_DIR, else .dealflow)."
        ),
    ] = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect server and UI.")] = 4200,
    web_port: Annotated[int, typer.Option(help="Dealflow's web service (approval pages).")] = 8000,
    smtp_port: Annotated[int, typer.Option(help="The mail catcher's SMTP server.")] = 1025,
    inbox_port: Annotated[int, typer.Option(help="The mail catcher's inbox page.")] = 8025,
) -> None:
    """Start Prefect, the deal runner, the web service and a mail catcher; Ctrl-C stops them."""
    from dealflow.stack.config import StackConfig
    from dealflow.stack.local import Stack

    config = StackConfig(
        data_dir=data_dir or get_settings().data_dir,
        prefect_port=prefect_port,
        web_port=web_port,
        smtp_port=smtp_port,
        inbox_port=inbox_port,
    )
    stack = Stack(config)
    _stop_on_signals()
    typer.echo("Starting the Dealflow stack (first start takes a minute)...")
    _start(stack)

    def announce() -> None:
        finance_login = _finance_login(config)
        for warning in stack.warnings:
            typer.echo(f"\nWarning: {warning}", err=True)
        typer.echo(_running(stack, finance_login))

    _watch(stack, announce)


def _stop_on_signals() -> None:
    """A closed terminal or a plain `kill` must stop the children too, not orphan them."""

    def stop_on_signal(signum: int, _frame: object) -> None:
        for name in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)  # one stop at a time
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)


def _start(stack: Stack) -> None:
    from dealflow.stack.local import StackError

    try:
        stack.start()
    except StackError as exc:
        raise fail(f"The stack did not start: {exc}") from exc
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(130) from None


def _finance_login(config: StackConfig) -> str:
    """How to log in to the finance page; the generated password exists before anyone
    needs it."""
    stack_settings = get_settings().model_copy(update={"data_dir": config.data_dir})
    stack_settings.finance_logins()
    return (
        "logins from DEALFLOW_FINANCE_USERS"
        if stack_settings.finance_users
        else f"user finance, password in {config.data_dir.resolve() / 'finance-password'}"
    )


def where_the_cli_finds(config: StackConfig) -> dict[str, str]:
    """The settings a CLI in another shell needs to work with this stack: its Prefect
    server, its data, its mail catcher (mail the CLI sends goes to this stack's inbox) and
    its web service (links in that mail open this stack's pages)."""
    return {
        "DEALFLOW_PREFECT_API_URL": config.prefect_api_url,
        "DEALFLOW_DATA_DIR": str(config.data_dir.resolve()),
        "DEALFLOW_SMTP_HOST": config.host,
        "DEALFLOW_SMTP_PORT": str(config.smtp_port),
        "DEALFLOW_PUBLIC_BASE_URL": config.web_url,
    }


def _export_line(config: StackConfig) -> str:
    """``export ...`` of every setting the CLI needs, when one of them is not what the
    settings of this folder already say (a port or the data folder moved)."""
    settings = get_settings()
    wanted = where_the_cli_finds(config)
    already = {
        "DEALFLOW_PREFECT_API_URL": settings.prefect_api_url,
        "DEALFLOW_DATA_DIR": str(settings.data_dir.resolve()),
        "DEALFLOW_SMTP_HOST": settings.smtp_host,
        "DEALFLOW_SMTP_PORT": str(settings.smtp_port),
        "DEALFLOW_PUBLIC_BASE_URL": settings.public_base_url,
    }
    if wanted == already:
        return ""
    return (
        "  export "
        + " ".join(f"{name}={shlex.quote(value)}" for name, value in wanted.items())
        + "\n"
    )


def _running(stack: Stack, finance_login: str) -> str:
    """What runs where, and how to submit a deal to it (from a shell that knows where the
    stack is, when it is not where the settings say)."""
    config = stack.config
    hint = _export_line(config)
    return (
        f"\nDealflow is running; every schedule has its next run. Logs: {stack.logs}\n"
        f"  Prefect UI:   {config.prefect_api_url.removesuffix('/api')}\n"
        f"  Mail inbox:   {config.inbox_url}\n"
        f"  Web service:  {config.web_url}\n"
        f"  Finance page: {config.web_url}/finance ({finance_login})\n\n"
        "Submit a deal from another terminal, in this folder:\n"
        f"{hint}"
        "  .venv/bin/dealflow deal submit examples/acme.json\n\n"
        "Press Ctrl-C to stop."
    )


def _watch(stack: Stack, announce: Callable[[], None]) -> None:
    """Say the stack is running, then watch it until Ctrl-C (or a signal) stops it, or one
    of its processes stops alone. A signal that comes while it is saying so stops it too."""
    try:
        announce()
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nStopping...")
        stack.stop()
        return
    dead = [name for name, p in stack.processes.items() if p.poll() is not None]
    message = f"{', '.join(dead)} stopped unexpectedly:\n{stack.log_tail(dead[0])}"
    stack.stop()
    raise fail(message)


def deploy() -> None:
    """Register prefect.yaml's deployments on the Prefect server (`prefect deploy --all`)."""
    from dealflow.stack.deploy import deploy_all

    deploy_all()


def runner(limit: Annotated[int, typer.Option(help="Flow runs at once.")] = 10) -> None:
    """Serve the deal-handoff deployment from this checkout (part of the stack)."""
    from dealflow.stack.runner import serve_deployments

    serve_deployments(limit)


def mailcatcher(smtp_port: int = 1025, http_port: int = 8025, host: str = "127.0.0.1") -> None:
    """Receive all mail on SMTP and show it on an inbox page (part of the stack)."""
    from dealflow.stack.mailcatcher import run

    run(get_settings().data_dir.resolve() / "mail", host, smtp_port, http_port)


def register(app: typer.Typer) -> None:
    """The stack's parts, top-level commands of their own."""
    app.command("deploy")(deploy)
    app.command("runner", hidden=True)(runner)
    app.command("mailcatcher", hidden=True)(mailcatcher)
