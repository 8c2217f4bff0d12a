"""The reports on the real stack: the flows publish keyed artifacts that the Prefect REST
API returns, the weekly email arrives once with its charts, the deal page opens from the
board's link, a deal's run carries its stage, team and tier tags; the CLI prints and
writes the report; a browser shows the charts."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from flows.pipeline_report import pipeline_report
from flows.weekly_report import weekly_report
from models.settings import get_settings
from tasks.run_tags import retag
from tests.browser import SCREENSHOTS, prefect_ui_page
from tests.conftest import Inbox
from tests.markdown_view import as_shown
from tests.report_history import seed_hand_history
from tests.support import deal_waiting_at_manager, dealflow, prefect_http

pytestmark = pytest.mark.stack

SUBJECT = "Dealflow pipeline review, 2026-03-02 to 2026-03-08"
DEAL_LINK = re.compile(r"\[(D\d)\]\((http://[^)\s]+/deals/D\d\?key=[A-Za-z0-9_.=-]+)\)")


@pytest.fixture(scope="module")
def history(stack: Any) -> None:
    seed_hand_history()


def latest_artifact(key: str) -> dict[str, Any]:
    response = prefect_http().get(f"artifacts/{key}/latest")
    response.raise_for_status()
    return dict(response.json())


def test_weekly_report_is_emailed_once_with_its_charts_and_kept_as_an_artifact(
    history: None, inbox: Inbox
) -> None:
    first, last = dt.date(2026, 3, 2), dt.date(2026, 3, 8)
    recipients = weekly_report(first=first, last=last)
    assert recipients == [
        "victor.stone@example.com",
        "dana.whitfield@example.com",
        "finance@example.com",
    ]

    mail = inbox.wait_for(lambda m: m["Subject"] == SUBJECT)
    assert set(str(mail["X-Envelope-To"]).split(", ")) == set(recipients)
    html = mail.get_body(("html",))
    assert html is not None
    body = str(html.get_content())
    assert "Sales manager approval" in body and "50%" in body
    images = {
        str(part["Content-ID"]): part.get_content()
        for part in mail.walk()
        if part.get_content_type() == "image/png"
    }
    assert set(images) == {"<funnel>", "<cycle-times>", "<aging>"}
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    assert all(f'src="cid:{cid.strip("<>")}"' in body for cid in images)

    artifact = latest_artifact("weekly-report")
    assert artifact["type"] == "markdown"
    shown = as_shown(artifact["data"])
    assert shown.startswith(f"{SUBJECT}\n")
    assert "| Sales manager approval | 2 | 1 | 1 | 50% | 100% |" in shown
    assert shown.count("](data:image/png;base64,") == 3

    weekly_report(first=first, last=last)  # the same period again: no second email
    assert len(inbox.matching(lambda m: m["Subject"] == SUBJECT)) == 1


def test_pipeline_board_lists_overdue_work_first_and_links_deal_pages(
    history: None, browser: Any
) -> None:
    keys = pipeline_report(now=dt.datetime(2026, 3, 10, 10, tzinfo=dt.UTC))
    assert keys == ["pipeline-board", "pipeline-approvals", "pipeline-cycle-times", "pipeline-cash"]
    board = as_shown(latest_artifact("pipeline-board")["data"])
    assert board.index("\nOverdue now\n") < board.index("\nWaiting deals")
    assert "| Gates and stages past their time limit | 1 |" in board
    assert "2.0 h overdue" in board  # D3: 26 business hours at a 24-hour gate
    assert re.search(r"\| \[D1\]\(.+\) \| Deal D1 \| 2026-03-02 \| 8 \|", board)
    assert "| I6 |" in board and "second-reminder" in board
    assert "Sales manager approval" in as_shown(latest_artifact("pipeline-approvals")["data"])
    assert "Lead screening" in as_shown(latest_artifact("pipeline-cycle-times")["data"])
    assert "Invoice-to-cash" in as_shown(latest_artifact("pipeline-cash")["data"])

    links = dict(DEAL_LINK.findall(board))
    page = httpx.get(links["D3"], timeout=30)
    assert page.status_code == 200
    assert "D3: Deal D3" in page.text and "Mara Keller" in page.text
    assert "gate/manager/requested" in page.text  # the timeline
    assert page.headers["Referrer-Policy"] == "no-referrer"

    shown = browser.new_page(viewport={"width": 1000, "height": 900})
    shown.goto(links["D3"])
    assert shown.get_by_role("heading", name="D3: Deal D3").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shown.screenshot(path=str(SCREENSHOTS / "deal-page.png"), full_page=True)
    shown.close()

    other_deal = links["D3"].replace("/deals/D3?", "/deals/D1?")
    assert httpx.get(other_deal, timeout=30).status_code == 403
    assert httpx.get(links["D3"].split("?")[0], timeout=30).status_code == 400


def test_deal_runs_carry_stage_team_and_tier_tags(stack: Any, inbox: Inbox, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    deal_id, run_id, _ = deal_waiting_at_manager(inbox, tmp_path)
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(UUID(run_id)).tags
    assert {"dealflow", "team:emea", "stage:approval:manager"} <= set(tags)
    assert not [t for t in tags if t.startswith("stage:") and t != "stage:approval:manager"]

    board = as_shown(latest_artifact(f"deal-{deal_id.lower()}")["data"])
    link = re.search(r"\[Open the deal's page\]\((\S+)\)", board)
    assert link, board
    assert deal_id in httpx.get(link.group(1), timeout=30).text


def test_retagging_replaces_only_dealflows_own_tags() -> None:
    before = ["dealflow", "team:emea", "stage:submitted", "vip"]
    after = retag(before, ["stage:approval:manager", "team:emea", "tier:A"])
    assert after == ["dealflow", "vip", "stage:approval:manager", "team:emea", "tier:A"]
    assert retag(after, ["stage:approval:manager", "team:emea", "tier:A"]) == after


def test_cli_prints_the_report_writes_html_and_refuses_bad_dates(
    history: None,
    tmp_path: Path,
    browser: Any,
) -> None:
    out = tmp_path / "weekly.html"
    result = dealflow("report", "--from", "2026-03-02", "--to", "2026-03-08", "--html", str(out))
    assert "Conversion per gate" in result.stdout and "Sales manager approval" in result.stdout
    assert f"HTML report: {out}" in result.stdout
    assert out.read_text().count('src="data:image/png;base64,') == 3

    backwards = dealflow("report", "--from", "2026-03-08", "--to", "2026-03-02", check=False)
    assert backwards.returncode == 2
    assert "--to (2026-03-02) is before --from (2026-03-08)" in backwards.stderr
    bad = dealflow("report", "--from", "March 2", "--to", "2026-03-08", check=False)
    assert bad.returncode == 2 and "--from: not a date (YYYY-MM-DD): 'March 2'" in bad.stderr

    page = browser.new_page(viewport={"width": 900, "height": 1200})
    page.goto(out.as_uri())
    assert page.title() == SUBJECT
    for chart in ("funnel", "cycle-times", "aging"):
        image = page.locator(f'img[data-chart="{chart}"]')
        assert image.evaluate("img => img.complete && img.naturalWidth > 300"), chart
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "weekly-report.png"), full_page=True)
    page.close()


def test_prefect_ui_shows_the_weekly_artifact_with_its_charts(
    stack: Any,
    history: None,
    browser: Any,
) -> None:
    weekly_report(first=dt.date(2026, 3, 2), last=dt.date(2026, 3, 8))
    artifact = latest_artifact("weekly-report")
    ui = get_settings().prefect_ui_url
    page = prefect_ui_page(browser, viewport={"width": 1200, "height": 1400})
    # The page a person bookmarks lists the key's versions; the newest opens the report.
    page.goto(f"{ui}/artifacts/key/{artifact['key']}")
    page.locator("a", has_text=re.compile(r"^[0-9a-f]{8}$")).first.click()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.get_by_text("Stage funnel").first.wait_for(timeout=30000)
    finally:
        page.screenshot(path=str(SCREENSHOTS / "weekly-report-artifact.png"), full_page=True)
    charts = page.locator('img[src^="data:image/png"]')
    charts.first.wait_for(timeout=30000)
    assert charts.count() == 3
    assert charts.first.evaluate("img => img.complete && img.naturalWidth > 300")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "weekly-report-artifact.png"), full_page=True)
    page.context.close()
