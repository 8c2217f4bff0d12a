"""Nothing Dealflow runs writes into the user's home folder.

The libraries that would keep their files there keep them in Dealflow's data folder
(``DEALFLOW_DATA_DIR``) instead: Prefect its home (``~/.prefect``: profiles, its local
database and storage), matplotlib its configuration and font cache (``~/.config/matplotlib``,
``~/.cache/matplotlib``). A folder the user chose (``PREFECT_HOME``, ``MPLCONFIGDIR``) is
kept. Both libraries read these when first imported, so every process Dealflow starts sets
them first: the CLI and the web service on starting, the chart module before it imports
matplotlib (a worker's flow run starts without either), the local stack for its children.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.settings import get_settings


def library_folders(data_dir: Path) -> dict[str, str]:
    """The environment variable of each library's folder, and its folder in ``data_dir``."""
    data = data_dir.resolve()
    return {"PREFECT_HOME": str(data / "prefect"), "MPLCONFIGDIR": str(data / "matplotlib")}


def keep_out_of_home() -> None:
    """Point each library at its folder in the data folder, unless it is set already."""
    for name, folder in library_folders(get_settings().data_dir).items():
        os.environ.setdefault(name, folder)
