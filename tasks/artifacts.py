"""What ops staff read in the Prefect UI: the deal's timeline and who is responsible."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact

from dealflow.clock import utcnow
from dealflow.db import session_scope
from dealflow.records import approvals, get_deal, timeline
from dealflow.rendering import render
from tasks.effect import effect_task


def artifact_key(deal_id: str) -> str:
    return "deal-" + re.sub(r"[^a-z0-9-]", "-", deal_id.lower())


@effect_task("publish-deal-board")
def publish_deal_board(deal_id: str) -> None:
    """Write the deal's keyed markdown artifact: stage, who it waits on, timeline, RACI."""
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        markdown = render(
            "artifacts/deal.md",
            deal=deal,
            gates=approvals(session, deal_id),
            events=timeline(session, deal_id),
            now=utcnow(),
        )
    create_markdown_artifact(
        key=artifact_key(deal_id),
        markdown=markdown,
        description=f"Deal {deal_id}: timeline and responsibilities",
    )
