"""What ops staff read in the Prefect UI: the deal's timeline and who is responsible."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from dealflow.infra.clock import utcnow
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.records import approvals, timeline
from dealflow.infra.rendering import render
from dealflow.reports.matrix_words import raci_table
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task
from tasks.run_tags import deal_tags, sync_run_tags


def artifact_key(deal_id: str) -> str:
    return "deal-" + re.sub(r"[^a-z0-9-]", "-", deal_id.lower())


@effect_task("publish-deal-board")
def publish_deal_board(deal_id: str) -> None:
    """Write the deal's keyed artifacts: a markdown board (stage, who it waits on since
    when, who is responsible for each gate, timeline, a link to the deal's page) and its
    RACI table; and tag the deal's run with its stage, team and tier."""
    with deal_effect(deal_id) as effect:
        deal = effect.deal
        raci = raci_table(effect.matrix, deal.team, deal.sales_rep_name)
        markdown = render(
            "artifacts/deal.md",
            deal=deal,
            gates=approvals(effect.session, deal_id),
            events=timeline(effect.session, deal_id),
            now=utcnow(),
            page_url=deal_page_url(deal_id),
        )
        run_id, tags = deal.flow_run_id, deal_tags(deal.stage, deal.team, deal.grade)
    if run_id:
        sync_run_tags(run_id, tags)
    create_markdown_artifact(
        key=artifact_key(deal_id),
        markdown=markdown,
        description=f"Deal {deal_id}: timeline and responsibilities",
    )
    if raci:
        create_table_artifact(
            key=f"{artifact_key(deal_id)}-raci",
            table=raci,
            description=f"Deal {deal_id}: who is responsible, accountable, consulted and informed",
        )
