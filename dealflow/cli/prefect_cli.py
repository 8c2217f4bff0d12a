"""``dealflow prefect ...``: Prefect's own command line, pointed at the Prefect server
Dealflow is set up for (``DEALFLOW_PREFECT_API_URL``, the local stack's by default) and
keeping Prefect's files in Dealflow's data folder, not the home folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "prefect",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(prefect)


def prefect(context: typer.Context) -> None:
    """Prefect's CLI on Dealflow's Prefect server: everything after `prefect` goes to
    Prefect (`dealflow prefect deployment run payment-check/payment-check`)."""
    if context.args == ["--help"]:
        typer.echo(_usage())
        return
    # The settings were applied to the environment when the command started (main());
    # Prefect creates its home folder only if the folder above it exists.
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    # A child, not exec: the command may run inside another Python process (tests, or an
    # application embedding the CLI), which exec would replace.
    prefect_cli = subprocess.Popen([sys.executable, "-m", "prefect", *context.args])
    try:
        code = prefect_cli.wait()
    except KeyboardInterrupt:  # Ctrl-C reached Prefect too: let it finish stopping
        code = prefect_cli.wait()
    raise typer.Exit(code)


def _usage() -> str:
    width = min(shutil.get_terminal_size().columns, 100) - 2
    about = (
        "Prefect's own CLI, on Dealflow's Prefect server "
        f"({os.environ.get('PREFECT_API_URL')}), with Prefect's files in "
        f"{os.environ['PREFECT_HOME']}: everything after `prefect` goes to Prefect. For "
        "example: dealflow prefect deployment run payment-check/payment-check. Run "
        "`dealflow prefect` alone for Prefect's own commands."
    )
    return "Usage: dealflow prefect [PREFECT COMMAND]...\n\n" + textwrap.fill(
        about, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
