"""Signed links to the sales rep's duties beside the deal's run: the weekly progress
report while delivery runs and the repurchase conversation once the deal is paid. Each
opens a page of the web service (web/duties.py) that shows the form and changes nothing;
posting it records the duty as the CLI does (``deal progress``, ``deal repurchase``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dealflow.infra.links import LinkClaim, Purpose, sign
from models import keys
from models.settings import get_settings
from models.tables import Deal

# Long enough for a delivery's weeks, or for the conversation after the reminder.
DUTY_LINK_DAYS = 90
# The step each duty's link names, and the page it opens.
DUTY_STEPS = {Purpose.PROGRESS: keys.PROGRESS_STEP, Purpose.REPURCHASE: keys.REPURCHASE_STEP}


@dataclass(frozen=True)
class DutyLink:
    url: str
    expires: dt.datetime


def duty_claim(purpose: Purpose, deal: Deal, since: dt.datetime) -> LinkClaim:
    """The claim of a link for the deal's sales rep to record ``purpose``'s duty."""
    expires = since + dt.timedelta(days=DUTY_LINK_DAYS)
    return LinkClaim(
        deal.id,
        DUTY_STEPS[purpose],
        deal.sales_rep_email,
        deal.flow_run_id or "",
        int(expires.timestamp()),
        purpose=purpose.value,
    )


def duty_url(claim: LinkClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/{claim.gate}/{sign(claim, settings.signing_key())}"


def duty_link(purpose: Purpose, deal: Deal, since: dt.datetime) -> DutyLink:
    """A link for the deal's sales rep to record the duty, working from ``since`` on."""
    claim = duty_claim(purpose, deal, since)
    return DutyLink(duty_url(claim), claim.expires)
