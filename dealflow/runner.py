"""Serves Dealflow's deployments from this checkout: the process that runs deal flows."""

from __future__ import annotations

import inspect

from models.settings import get_settings


def serve_deployments(limit: int) -> None:
    from prefect import serve

    from flows.deal_handoff import deal_handoff

    flow_name, _, deployment_name = get_settings().deployment.partition("/")
    assert flow_name == deal_handoff.name, f"DEALFLOW_DEPLOYMENT must name flow {deal_handoff.name}"
    deployment = deal_handoff.to_deployment(
        name=deployment_name,
        tags=["dealflow"],
        description="One run per won deal: approvals, delivery kickoff, invoicing.",
    )
    assert not inspect.isawaitable(deployment)
    serve(deployment, limit=limit, print_starting_message=False)
