"""What the stack's Prefect server tells: the errors its services logged, the deployments
that have a scheduled run, the workers that are online."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx

_TIMING = re.compile(r"\S?\s*\[\s*[\d.]+\s*m?s\]\s*")  # "↩ [  410ms] ": varies per line
# The last line of a logged traceback: "sqlalchemy.exc.InvalidRequestError: Can't ..."
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:")


def logged_errors(log: Path, most: int = 6) -> str:
    """The errors in the server's ``log``, each once: which service logged it (the
    ``| ERROR | <logger> - ...`` line) and the exception that ended its traceback."""
    if not log.exists():
        return ""
    found: dict[str, None] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "| ERROR" in line:
            found[_TIMING.sub("", line.split("| ERROR", 1)[1]).strip(" |")] = None
        elif _EXCEPTION_LINE.match(line) is not None:
            found[line.strip()] = None
    return "\n".join(list(found)[-most:])


def deployments_with_upcoming_runs(api: httpx.Client) -> set[str]:
    response = api.post("deployments/filter", json={"limit": 200})
    if response.status_code != 200:
        return set()
    names = {d["id"]: d["name"] for d in response.json()}
    runs = api.post(
        "flow_runs/filter",
        json={
            "flow_runs": {
                "deployment_id": {"any_": list(names)},
                "state": {"type": {"any_": ["SCHEDULED"]}},
            },
            "limit": 200,
        },
    )
    if runs.status_code != 200:
        return set()
    return {names[run["deployment_id"]] for run in runs.json() if run["deployment_id"] in names}


def workers_online(api: httpx.Client, pool: str, since: float) -> set[str] | None:
    """The workers of ``pool`` online with a heartbeat after ``since`` (seconds since the
    epoch); None when the server did not say."""
    response = api.post(f"work_pools/{pool}/workers/filter", json={"limit": 50})
    if response.status_code != 200:
        return None
    return {
        w["name"]
        for w in response.json()
        if w.get("status") == "ONLINE"
        and dt.datetime.fromisoformat(w["last_heartbeat_time"]).timestamp() > since
    }
