"""The tags of a deal's flow run, which ops staff filter on in the Prefect UI."""

from __future__ import annotations

import logging
from uuid import UUID

# Tags Dealflow owns; any other tag on the run (a person's own) is kept as it is.
OWN_PREFIXES = ("stage:", "team:", "tier:")


def deal_tags(stage: str, team: str, grade: str | None) -> list[str]:
    tags = [f"stage:{stage}", f"team:{team}"]
    if grade:
        tags.append(f"tier:{grade}")
    return tags


def retag(current: list[str], wanted: list[str]) -> list[str]:
    """``current`` with Dealflow's own tags replaced by ``wanted``, order kept."""
    kept = [tag for tag in current if not tag.startswith(OWN_PREFIXES)]
    return kept + [tag for tag in wanted if tag not in kept]


def sync_run_tags(flow_run_id: str, wanted: list[str]) -> bool:
    """Give the run ``wanted`` in place of its earlier stage, team and tier tags; True if
    they changed (the same tags again write nothing). A run Prefect no longer knows (an
    operator deleted it) has no tags to keep: nothing is written, and the sweep that
    publishes many boards goes on with the others."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            logging.getLogger(__name__).warning(
                "flow run %s is gone from Prefect: its deal's tags were not updated", flow_run_id
            )
            return False
        tags = retag(list(run.tags), wanted)
        if sorted(tags) == sorted(run.tags):
            return False
        client.update_flow_run(UUID(flow_run_id), tags=tags)
    return True
