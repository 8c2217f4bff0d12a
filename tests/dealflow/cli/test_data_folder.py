"""The CLI run outside the project folder, where its data is not: one line saying where it
looked and how to point it at the data, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import dealflow


def test_the_cli_says_where_it_looked_for_its_data(tmp_path: Path) -> None:
    # As a person's shell has it: no DEALFLOW_* settings, in a folder of their own.
    env = {name: value for name, value in os.environ.items() if not name.startswith("DEALFLOW_")}
    result = dealflow("deal", "status", "ACME-2026-014", check=False, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / ".dealflow") in lines[0]
    assert "DEALFLOW_DATA_DIR" in lines[0]
    assert not (tmp_path / ".dealflow").exists(), "looking created nothing"
