"""Registering prefect.yaml's deployments on the Prefect server: ``prefect deploy --all``.

Prefect 3.8.8's ``prefect deploy`` registers a deployment, then asks the server which
workers serve its pool to print a hint, without paging (``limit: null``). With the
FastAPI that Prefect 3.8 supports, the server answers that question with a 422, and
the command stops before the second deployment. ``dealflow deploy`` runs Prefect's own
command with that question paged, so that every deployment is registered exactly as
``prefect deploy --all`` would register it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from models.settings import PROJECT_ROOT

# Prefect server's default page size (PREFECT_SERVER_API_DEFAULT_LIMIT).
WORKER_PAGE = 200


def _page_worker_queries() -> None:
    from prefect.client.orchestration import PrefectClient

    unpaged = PrefectClient.read_workers_for_work_pool
    if getattr(unpaged, "dealflow_paged", False):
        return

    async def paged(
        self: PrefectClient,
        work_pool_name: str,
        worker_filter: Any = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> Any:
        return await unpaged(
            self,
            work_pool_name,
            worker_filter=worker_filter,
            offset=offset or 0,
            limit=WORKER_PAGE if limit is None else limit,
        )

    paged.dealflow_paged = True  # type: ignore[attr-defined]
    PrefectClient.read_workers_for_work_pool = paged  # type: ignore[method-assign,assignment]


def deployments() -> list[dict[str, Any]]:
    """prefect.yaml's deployments, as written there."""
    import yaml

    data = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    return list(data["deployments"])


def scheduled_deployments() -> list[str]:
    """Names of prefect.yaml's deployments that run on a schedule."""
    return [d["name"] for d in deployments() if d.get("schedules")]


def deploy_all() -> None:
    """Run ``prefect --no-prompt deploy --all`` on this checkout's prefect.yaml."""
    from prefect.cli import app

    _page_worker_queries()
    os.chdir(PROJECT_ROOT)  # prefect.yaml's entrypoints are relative to it
    sys.argv = ["prefect", "--no-prompt", "deploy", "--all"]
    app()
