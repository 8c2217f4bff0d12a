"""The finance page's anti-forgery tokens: one per form (the path it posts to) and page
view, made for the logged-in user and good for two hours, so that another site cannot
make a finance user's browser post to these pages with their remembered credentials,
and a token seen once (a screenshot, a proxy log of a form body) is soon worth nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

from dealflow.infra.clock import utcnow
from models.settings import get_settings

# A finance page's forms work this long after the page was shown; then the page must be
# opened again (a form kept open in a forgotten tab is not a standing permission).
FORM_TOKEN_SECONDS = 2 * 3600
_FORM_KEY_PURPOSE = b"dealflow finance form"


def _form_mac(user: str, action: str, issued: str, nonce: str) -> str:
    key = hmac.new(get_settings().signing_key(), _FORM_KEY_PURPOSE, hashlib.sha256).digest()
    message = f"{user}\n{action}\n{issued}\n{nonce}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def form_token(user: str, action: str, now: dt.datetime | None = None) -> str:
    """The anti-forgery token of one form (``action``, the path it posts to), for
    ``user``, issued ``now``: ``<issued>.<nonce>.<HMAC>``, new at every page view."""
    issued = str(int((now or utcnow()).timestamp()))
    nonce = secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_form_mac(user, action, issued, nonce)}"


class StaleForm(Exception):
    """A finance form post without a live token of its page: nothing is done."""


def check_form(user: str, action: str, token: str, now: dt.datetime | None = None) -> None:
    """StaleForm unless ``token`` was issued to ``user`` for the form posting to
    ``action``, less than FORM_TOKEN_SECONDS ago."""
    issued, _, rest = token.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isascii() and issued.isdigit() and nonce and mac):
        raise StaleForm
    expected = _form_mac(user, action, issued, nonce)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise StaleForm
    age = (now or utcnow()).timestamp() - int(issued)
    if not -60 <= age < FORM_TOKEN_SECONDS:  # a minute of clock skew between processes
        raise StaleForm
