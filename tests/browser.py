"""A real browser for the tests: Debian's chromium driven by Playwright, headless."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("DEALFLOW_TEST_OUTPUT", "test-output")) / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Any:
    if not Path(CHROMIUM).exists():
        if os.environ.get("DEALFLOW_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed: run `make browser`")
        pytest.skip("chromium is not installed (`make browser` installs Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


def prefect_ui_page(browser: Any, **options: Any) -> Any:
    """A page of the Prefect UI as an operator sees it: logged in where the API has a
    login (the UI keeps it in the browser's local storage, as its login page does)."""
    context = browser.new_context(**options)
    login = os.environ.get("PREFECT_API_AUTH_STRING")
    if login:
        context.add_init_script(
            f"localStorage.setItem('prefect-password', btoa({json.dumps(login)}))"
        )
    return context.new_page()
