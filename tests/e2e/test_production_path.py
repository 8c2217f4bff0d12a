"""The production path of docs/deployment.md: prefect.yaml deployed to a process work pool,
two workers, PostgreSQL. Runs when the stack is on it (DEALFLOW_TEST_STACK=postgres)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.mail import decide, to
from harness.runs import wait_for_state, wait_until_no_process
from models.settings import PROJECT_ROOT
from tests.conftest import Inbox
from tests.support import deal_waiting_at_manager, prefect_http, production_path_only

pytestmark = production_path_only()


def workers_that_ran(stack: Any, run_id: str) -> list[str]:
    """The stack's workers whose log says they started the flow run: both may try to
    submit it, and the one the server refuses logs "Aborted submission"."""
    ran = []
    for name in ("worker-1", "worker-2"):
        log = (stack.logs / f"{name}.log").read_text()
        submitted = log.count(f"submitting flow run '{run_id}'")
        if submitted > log.count(f"Aborted submission of flow run '{run_id}'"):
            ran.append(name)
    return ran


def test_prefect_yaml_is_deployed_to_the_work_pool(stack: Any) -> None:
    response = prefect_http().post("deployments/filter", json={"limit": 50, "offset": 0})
    deployments = {d["name"]: d for d in response.json()}
    declared = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    assert set(deployments) == {d["name"] for d in declared}
    assert {"deal-handoff", "sla-sweep", "payment-check"} <= set(deployments)
    assert all(d["work_pool_name"] == "dealflow" for d in deployments.values())
    # `prefect deploy` fills in DEALFLOW_CODE_DIR as it is where it runs: every worker
    # finds the code at that path.
    [pull] = deployments["deal-handoff"]["pull_steps"]
    assert pull["prefect.deployments.steps.set_working_directory"] == {
        "directory": str(PROJECT_ROOT)
    }
    pool = prefect_http().get("work_pools/dealflow").json()
    assert pool["type"] == "process" and pool["concurrency_limit"] == stack.config.pool_limit


def test_a_deal_suspended_under_one_worker_resumes_on_the_other(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """A rolling restart: the worker that started the deal is stopped while the deal
    waits; the approval resumes it on the other worker."""
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    wait_until_no_process(run_id)
    [first] = workers_that_ran(stack, run_id)
    other = "worker-2" if first == "worker-1" else "worker-1"
    stack.halt(first)
    try:
        assert decide(link, "approve", "fine").status_code == 200
        inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
        wait_for_state(run_id, "PAUSED", key="gate-director")
        assert workers_that_ran(stack, run_id) == sorted([first, other])
    finally:
        stack.restart(first)


def test_the_prefect_api_answers_only_requests_with_its_credentials(stack: Any) -> None:
    api = stack.config.prefect_api_url
    for method, path, body in (
        ("POST", "flow_runs/filter", {"limit": 1}),
        ("POST", "flow_runs/00000000-0000-0000-0000-000000000000/resume", {"run_input": {}}),
        ("GET", "deployments/name/deal-handoff/deal-handoff", None),
    ):
        refused = httpx.request(method, f"{api}/{path}", json=body, timeout=10)
        assert refused.status_code == 401, (path, refused.status_code)
        wrong = httpx.request(
            method, f"{api}/{path}", json=body, auth=("admin", "admin"), timeout=10
        )
        assert wrong.status_code == 401, (path, wrong.status_code)
    assert prefect_http().post("flow_runs/filter", json={"limit": 1}).status_code == 200
