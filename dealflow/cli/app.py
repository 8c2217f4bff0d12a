"""How every ``dealflow`` group and command shows its ``--help``: typer's plain help (no Rich
panels), which wraps a docstring's lines into paragraphs (a blank line starts a new one)
instead of keeping its line breaks; flags without a type (``--dry-run``, not ``--dry-run
<bool>``); arguments by their metavar (``DEAL_FILE``, not ``{file}``); and a group's
commands in an order chosen for the reader, not in the order they were registered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer

# typer carries its own copy of click (typer._click): its commands take that click's types.
from typer._click import Context, HelpFormatter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

# The help's text column may use the terminal's width up to this (click's default is 80).
MAX_HELP_WIDTH = 100


class Group(typer.Typer):
    """A ``typer.Typer`` whose help is plain and whose ``--help`` lists its commands in
    ``order`` first, then the others in the order they were registered."""

    def __init__(self, help: str, *, order: Sequence[str] = (), **kwargs: Any) -> None:
        listing = type("Listing", (_Listing,), {"order": tuple(order)})
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("context_settings", {"max_content_width": MAX_HELP_WIDTH})
        super().__init__(help=help, cls=listing, rich_markup_mode=None, **kwargs)

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", _Command)
        return super().command(name, **kwargs)


class _Listing(TyperGroup):
    order: tuple[str, ...] = ()

    def list_commands(self, ctx: Context) -> list[str]:
        rank = {name: place for place, name in enumerate(self.order)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """Each command with the first sentence of its help, whole and wrapped (click cuts it
        to one line with "...")."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# An option's value without a metavar of its own is named by its type, as click names it.
_VALUE_NAMES = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "FLOAT"}


def _value_name(option: TyperOption, ctx: Context) -> str:
    """``TEXT`` for typer's ``<str>``, ``PATH`` for ``<path>``..."""
    shown = option.display_type_rich(ctx) or ""
    if option.metavar is not None or not shown.startswith("<"):
        return shown
    typed = shown.strip("<>")
    return _VALUE_NAMES.get(typed, typed.upper().replace(" ", "_"))


def _argument_name(argument: TyperArgument) -> str:
    name = argument.metavar or (argument.name or "").upper()
    return name + ("..." if argument.nargs != 1 else "")


class _Command(TyperCommand):
    """Arguments by their metavar alone, in the usage line and in the list of arguments
    (typer would show ``{file}`` and ``file <path>``); an option's value without a metavar
    of its own by its type in capitals, like ``WHO`` (``--note TEXT``, not ``--note <str>``)."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((_argument_name(param), record[1]))
            elif isinstance(param, TyperOption) and not param.is_flag:
                shown = param.display_type_rich(ctx)
                names = record[0].replace(f" {shown}", f" {_value_name(param, ctx)}")
                options.append((names, record[1]))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)
