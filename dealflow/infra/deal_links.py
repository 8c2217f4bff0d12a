"""Read-only links to a deal's page in the web service, for ops staff.

The page shows customer data, so a link carries a signed token like an approval link,
made with a key of its own (derived from the signing secret): an approval token does not
open a deal page, nor the other way round. A link names one deal and expires; the
Prefect artifacts that hold these links (each deal's board, the pipeline board) are
rewritten often, so their links stay fresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import quote

from dealflow.infra.clock import utcnow
from dealflow.infra.links import ApprovalClaim, LinkError, LinkProblem, sign, verify
from models.settings import get_settings

PAGE_LINK_DAYS = 30
PURPOSE = b"dealflow deal page"
PURPOSE_NAME = "deal-page"


def _page_key() -> bytes:
    return hmac.new(get_settings().signing_key(), PURPOSE, hashlib.sha256).digest()


def deal_page_token(deal_id: str, now: dt.datetime | None = None) -> str:
    expires = (now or utcnow()) + dt.timedelta(days=PAGE_LINK_DAYS)
    claim = ApprovalClaim(
        deal_id=deal_id,
        gate="",
        approver="",
        run_id="",
        expires_at=int(expires.timestamp()),
        purpose=PURPOSE_NAME,
    )
    return sign(claim, _page_key())


def deal_page_url(deal_id: str, now: dt.datetime | None = None) -> str:
    base = get_settings().public_base_url
    return f"{base}/deals/{quote(deal_id)}?key={deal_page_token(deal_id, now)}"


def check_deal_page_token(deal_id: str, token: str, now: dt.datetime) -> None:
    """LinkError unless ``token`` is a live deal-page token for ``deal_id``."""
    claim = verify(token, _page_key(), now)
    if claim.purpose != PURPOSE_NAME or claim.deal_id != deal_id:
        raise LinkError(LinkProblem.FORGED)
