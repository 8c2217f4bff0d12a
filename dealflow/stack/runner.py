"""Serves Dealflow's deployments from this checkout: the process that runs deal flows
and the scheduled sweeps. The deployments, their schedules and descriptions are read
from prefect.yaml, the one list the production path deploys too."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

from dealflow.stack.deploy import deployments
from models.settings import get_settings


def _schedules(declared: list[dict[str, Any]]) -> list[Any]:
    from prefect.schedules import Cron, Interval

    found: list[Any] = []
    for schedule in declared:
        if "cron" in schedule:
            found.append(Cron(schedule["cron"], timezone=schedule.get("timezone")))
        elif "interval" in schedule:
            found.append(Interval(dt.timedelta(seconds=float(schedule["interval"]))))
        else:
            raise ValueError(f"prefect.yaml: a schedule needs cron or interval: {schedule}")
    return found


def serve_deployments(limit: int) -> None:
    from prefect import serve

    flow_name, _, deal_deployment = get_settings().deployment.partition("/")
    served = []
    for declared in deployments():
        module, _, function = declared["entrypoint"].partition(":")
        flow = getattr(
            importlib.import_module(module.removesuffix(".py").replace("/", ".")), function
        )
        name = declared["name"]
        if name == "deal-handoff":
            assert flow_name == flow.name, f"DEALFLOW_DEPLOYMENT must name flow {flow.name}"
            name = deal_deployment
        served.append(
            flow.to_deployment(
                name=name,
                tags=declared.get("tags", []),
                description=declared.get("description"),
                schedules=_schedules(declared.get("schedules", [])),
            )
        )
    serve(*served, limit=limit, print_starting_message=False)
