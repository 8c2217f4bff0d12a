"""The pipeline-report flow: the board ops staff bookmark in the Prefect UI."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from dealflow.infra.clock import utcnow
from flows.run_names import by_minute
from tasks.reports import publish_pipeline_board, read_pipeline


@flow(name="pipeline-report", flow_run_name=by_minute("pipeline-report"), persist_result=False)
def pipeline_report(now: dt.datetime | None = None) -> list[str]:
    """Rewrite the pipeline's global keyed artifacts: ``pipeline-board`` (overdue work
    first: gates and stages past their limit, late delivery plans, invoices past due or
    in the dunning ladder; then every waiting deal with who it waits on, since when and
    its time left; deals by stage), ``pipeline-approvals`` (turnaround and rates per gate
    and approver), ``pipeline-cycle-times`` and ``pipeline-cash`` (invoice-to-cash,
    aging, collection rate).

    Waits: never. Runs hourly (prefect.yaml, the local stack) and on demand; ``now``
    defaults to the current time.

    Touches: reads Dealflow's database; writes Prefect artifacts. Sends nothing.
    """
    return publish_pipeline_board(read_pipeline(now or utcnow()))
