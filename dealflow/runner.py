"""Serves Dealflow's deployments from this checkout: the process that runs deal flows
and the scheduled sweeps."""

from __future__ import annotations

import datetime as dt
import inspect

from models.settings import get_settings


def serve_deployments(limit: int) -> None:
    from prefect import serve
    from prefect.schedules import Cron

    from flows.deal_handoff import deal_handoff
    from flows.payment_check import payment_check
    from flows.pipeline_report import pipeline_report
    from flows.sla_sweep import sla_sweep
    from flows.weekly_report import weekly_report

    flow_name, _, deployment_name = get_settings().deployment.partition("/")
    assert flow_name == deal_handoff.name, f"DEALFLOW_DEPLOYMENT must name flow {deal_handoff.name}"
    deployment = deal_handoff.to_deployment(
        name=deployment_name,
        tags=["dealflow"],
        description="One run per won deal: approvals, delivery kickoff, invoicing.",
    )
    sweep = sla_sweep.to_deployment(
        name="sla-sweep",
        interval=dt.timedelta(minutes=15),
        tags=["dealflow"],
        description="Reminders and escalations for approval gates past their time limit.",
    )
    check = payment_check.to_deployment(
        name="payment-check",
        cron="0 7 * * *",
        tags=["dealflow", "finance"],
        description="Daily: the dunning ladder, the aging report, closing paid deals.",
    )
    board = pipeline_report.to_deployment(
        name="pipeline-report",
        interval=dt.timedelta(hours=1),
        tags=["dealflow"],
        description="The pipeline board: overdue work, waiting deals, approvals, cycle times, cash.",
    )
    weekly = weekly_report.to_deployment(
        name="weekly-report",
        schedules=[Cron("0 7 * * 1", timezone="Europe/Berlin")],  # Monday morning, as prefect.yaml
        tags=["dealflow"],
        description="The weekly review measures, emailed and kept as an artifact.",
    )
    assert not inspect.isawaitable(deployment) and not inspect.isawaitable(sweep)
    assert not inspect.isawaitable(check)
    assert not inspect.isawaitable(board) and not inspect.isawaitable(weekly)
    serve(deployment, sweep, check, board, weekly, limit=limit, print_starting_message=False)
