"""Messaging-app channels: where a person or team of the matrix also gets Dealflow's
notices (DingTalk, WeCom, Feishu, Slack, Microsoft Teams, ...), named by an Apprise URL.

A channel's URL may hold ``${NAME}`` references to environment variables, so that its
token need not be written in the matrix file: they are checked for form when the matrix
is loaded and resolved only when a notice is posted (by the process that posts it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import apprise
from apprise.manager_plugins import NotificationManager

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class ChannelError(ValueError):
    """A channel URL that cannot be posted to: unknown service, missing variable."""


def check_channel(url: str) -> str:
    """``url`` if Apprise can post to it, else ChannelError saying why. A URL with
    ``${NAME}`` references is checked for its service only: its token is not known yet."""
    url = url.strip()
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise ChannelError(f"{url!r} is not a URL (expected e.g. dingtalk://TOKEN/)")
    if scheme[1].lower() not in NotificationManager():
        raise ChannelError(f"{scheme[1]}:// is not a service Apprise knows")
    if "$" in REFERENCE.sub("", url):
        raise ChannelError("a $ in a channel URL must start a ${NAME} reference")
    if not REFERENCE.search(url) and apprise.Apprise.instantiate(url) is None:
        raise ChannelError(f"Apprise cannot post to this {scheme[1]}:// URL (its form is wrong)")
    return url


def resolve_channel(url: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` with each ``${NAME}`` replaced by the environment variable's value."""
    environ = os.environ if environ is None else environ
    missing = sorted({name for name in REFERENCE.findall(url) if not environ.get(name)})
    if missing:
        raise ChannelError(f"environment variable {', '.join(missing)} is not set")
    return REFERENCE.sub(lambda match: environ[match[1]], url)


def redact(text: str, url: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the values of ``url``'s references put back as ``${NAME}``: an error
    recorded in the outbox never holds a secret."""
    environ = os.environ if environ is None else environ
    for name in set(REFERENCE.findall(url)):
        value = environ.get(name)
        if value:
            text = text.replace(value, f"${{{name}}}")
    return text
