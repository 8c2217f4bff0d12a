"""What ops staff read in the Prefect UI: the deal's timeline and who is responsible."""

from __future__ import annotations

import datetime as dt
import re
from uuid import UUID

from dealflow.infra.clock import utcnow
from dealflow.infra.deal_links import PAGE_LINK_DAYS, deal_page_url
from dealflow.infra.records import approvals, timeline
from dealflow.infra.rendering import render
from dealflow.reports.matrix_words import raci_table
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task
from tasks.run_tags import deal_tags, sync_run_tags


def artifact_key(deal_id: str) -> str:
    return "deal-" + re.sub(r"[^a-z0-9-]", "-", deal_id.lower())


# A board is posted again, unchanged, once the page link in its latest version has lived
# half its life: the link ops staff click from the board keeps working.
LINK_REFRESH = dt.timedelta(days=PAGE_LINK_DAYS / 2)

# The lines of the board that change with every rendering and say nothing new about the
# deal: its signed page link and the moment it was rendered.
_FRESH_ONLY = re.compile(r"^(\[Open the deal's page\]\(.*|_Updated .*_)$", re.MULTILINE)


def lasting(markdown: str) -> str:
    """What an artifact says about the deal, without what only makes it fresh."""
    return _FRESH_ONLY.sub("", markdown)


@effect_task("publish-deal-board")
def publish_deal_board(deal_id: str) -> None:
    """Write the deal's keyed artifacts: a markdown board (stage, who it waits on since
    when, who is responsible for each gate, timeline, a link to the deal's page) and its
    RACI table; and tag the deal's run with its stage, team and tier.

    A new version of an artifact is posted only when what it says changed (the board's
    page link and "Updated" line aside; see ``LINK_REFRESH``), so that a run resumed
    many times shows one card per change. Each version names the deal's run, whichever
    run posts it (the sla-sweep posts boards too)."""
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
    publish(
        artifact_key(deal_id),
        markdown,
        f"Deal {deal_id}: timeline and responsibilities",
        run_id,
    )
    if raci.rows:
        # Markdown, not a table artifact: Prefect's V1 UI reads a table artifact's cells
        # as markdown and V2 as text, so no escaping of the rep's name suits both.
        description = f"Deal {deal_id}: who is responsible, accountable, consulted and informed"
        publish(
            f"{artifact_key(deal_id)}-raci",
            render("artifacts/tables.md", title=description, intro="", tables=[raci]),
            description,
            run_id,
        )


def publish(key: str, markdown: str, description: str, flow_run_id: str | None) -> bool:
    """Post ``markdown`` as the next version of artifact ``key`` unless the latest
    version says the same (and is younger than ``LINK_REFRESH``); True if posted."""
    if not says_something_new(markdown, latest_version(key), utcnow()):
        return False
    create_version(key, markdown, description, flow_run_id)
    return True


def says_something_new(
    markdown: str, latest: tuple[str, dt.datetime] | None, now: dt.datetime
) -> bool:
    """Whether ``markdown`` deserves a new version after ``latest`` (its markdown and
    when it was posted): it says something new, or the latest one's link is half-way
    through its life."""
    if latest is None:
        return True
    said, created = latest
    return lasting(said) != lasting(markdown) or created <= now - LINK_REFRESH


def latest_version(key: str) -> tuple[str, dt.datetime] | None:
    """The markdown of artifact ``key``'s newest version and when it was posted."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    if not found or found[0].created is None:
        return None
    return str(found[0].data or ""), found[0].created


def create_version(key: str, markdown: str, description: str, flow_run_id: str | None) -> None:
    """Post a markdown version of artifact ``key`` on run ``flow_run_id`` (the deal's,
    not whichever run posts it: without it the card names no run, or the sweep's); the
    task run too when it is a task of that run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, current_run_id = get_task_and_flow_run_ids()
    run = UUID(flow_run_id) if flow_run_id else current_run_id
    with get_client(sync_client=True) as client:
        client.create_artifact(
            artifact=ArtifactCreate(
                key=key,
                type="markdown",
                description=description,
                data=markdown,
                flow_run_id=run,
                task_run_id=task_run_id if run == current_run_id else None,
            )
        )
