"""Read-only links to a deal's page in the web service, for ops staff.

The page shows customer data, so a link carries a signed token like an approval link,
for the purpose "deal-page" (dealflow/infra/links.py derives a key per purpose): an
approval token does not open a deal page, nor the other way round. A link names one deal and expires; the
Prefect artifacts that hold these links (each deal's board, the pipeline board) are
rewritten often, so their links stay fresh.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from dealflow.infra.clock import utcnow
from dealflow.infra.links import (
    LinkClaim,
    LinkError,
    LinkProblem,
    Purpose,
    link_keys,
    sign,
    verify,
)
from models.settings import get_settings

PAGE_LINK_DAYS = 30
PURPOSE_NAME = Purpose.DEAL_PAGE.value


def deal_page_token(deal_id: str, now: dt.datetime | None = None) -> str:
    expires = (now or utcnow()) + dt.timedelta(days=PAGE_LINK_DAYS)
    claim = LinkClaim(
        deal_id=deal_id,
        gate="",
        approver="",
        run_id="",
        expires_at=int(expires.timestamp()),
        purpose=PURPOSE_NAME,
    )
    return sign(claim, link_keys())


def deal_page_url(deal_id: str, now: dt.datetime | None = None) -> str:
    base = get_settings().public_base_url
    return f"{base}/deals/{quote(deal_id)}?key={deal_page_token(deal_id, now)}"


def check_deal_page_token(deal_id: str, token: str, now: dt.datetime) -> None:
    """LinkError unless ``token`` is a live deal-page token for ``deal_id``."""
    claim = verify(token, link_keys(), now, Purpose.DEAL_PAGE)
    if claim.deal_id != deal_id:
        raise LinkError(LinkProblem.FORGED)
