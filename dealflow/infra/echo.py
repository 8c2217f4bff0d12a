"""Quoting what a person sent back to them in an error, at a readable length."""

from __future__ import annotations

ECHO_LIMIT = 60  # characters of a rejected value an error message quotes


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters with its full length said: a refusal
    must say what was wrong, not send a five-megabyte field back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(str(value)):,} characters)"
