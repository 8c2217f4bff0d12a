"""Which Prefect server Dealflow's own processes talk to."""

from __future__ import annotations

import os

from models.settings import get_settings


def use_configured_prefect_server() -> None:
    """Point Prefect at ``DEALFLOW_PREFECT_API_URL`` unless ``PREFECT_API_URL`` is set.

    Prefect reads its settings when first imported: without this, a process started
    from a plain shell would talk to a throwaway in-process server instead.
    """
    settings = get_settings()
    os.environ.setdefault("PREFECT_API_URL", settings.prefect_api_url)
    os.environ.setdefault("PREFECT_HOME", str(settings.data_dir.resolve() / "prefect"))
