"""The weekly review's on-time measures for the duties beside a deal's run (#17): the
signed contract archived by its business day, and a progress report for every delivery
week. Counted from the deals' timelines, on a real database."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal
from dealflow.intake.submit import load_deal_file, store_deal
from dealflow.reports.period import ReportPeriod
from dealflow.reports.pipeline_figures import figures
from models import keys
from models.matrix import load_matrix
from models.settings import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.usefixtures("database_url")
# Monday 2 to Sunday 8 March 2026, Berlin; the ACME deal's team (emea) is in Berlin.
WEEK = ReportPeriod(dt.date(2026, 3, 2), dt.date(2026, 3, 8), "Europe/Berlin")
ARCHIVING = "Signed contract archived (Sales administration)"
PROGRESS = "Weekly progress report (Sales representative)"
COMPLAINTS = "Complaint answered in time (Customer success)"
FEBRUARY_23 = dt.datetime(2026, 2, 23, 10, tzinfo=dt.UTC)


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


def deal_with(*entries: tuple[str, dt.datetime]) -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    deal_id = f"M{uuid.uuid4().hex[:8].upper()}-ACME"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        for key, moment in entries:
            add_transition(
                session, deal, key=key, stage=deal.stage, event=key, actor="test", at=moment
            )
    return deal_id


def on_time() -> dict[str, tuple[int, int]]:
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        week = figures(session, matrix, WEEK)
    return {who: (o.on_time, o.late) for who, o in week.on_time.items()}


def test_archiving_is_on_time_by_its_business_day_and_late_after() -> None:
    # Asked Monday 2 March: due three business days later, Thursday 5 March.
    deal_with((keys.ARCHIVE_REQUESTED, at(2)), (keys.ARCHIVED, at(5, 15)))
    deal_with((keys.ARCHIVE_REQUESTED, at(2)), (keys.ARCHIVED, at(6, 9)))
    deal_with((keys.ARCHIVE_REQUESTED, at(2)))  # still not archived at the week's end
    deal_with((keys.ARCHIVE_REQUESTED, at(6)))  # due next week: not counted yet
    assert on_time()[ARCHIVING] == (1, 2)


def test_each_delivery_week_ending_in_the_period_needs_its_report() -> None:
    # Kicked off 23 February: weeks 1 and 2 end 2 and 9 March; only week 1 is this period's.
    deal_with((keys.KICKOFF, FEBRUARY_23), (keys.progress_report(1), at(1)))
    # Kicked off 24 February, no report: week 1 ends 3 March, late.
    deal_with((keys.KICKOFF, dt.datetime(2026, 2, 24, 10, tzinfo=dt.UTC)))
    # Kicked off 24 February and accepted 2 March: no week ended while it ran in the period.
    deal_with((keys.KICKOFF, dt.datetime(2026, 2, 24, 10, tzinfo=dt.UTC)), (keys.ACCEPTED, at(2)))
    assert on_time()[PROGRESS] == (1, 1)


def test_the_satisfaction_scores_and_complaints_answered_in_time() -> None:
    from models.satisfaction import score_in, survey_event

    assert score_in(survey_event(10, "Jonas Weber")) == 10
    assert score_in("Customer satisfaction high") is None
    # Answered Monday 2 March; complaints are answered within 16 working hours.
    deal_with((keys.SURVEY_ANSWERED, at(2)))  # the entry's words say no score: not counted
    with session_scope() as session:
        deal = get_deal(session, deal_with(), for_update=True)
        for key, event, moment in [
            (keys.SURVEY_ANSWERED, survey_event(4, "Jonas Weber"), at(2)),
            (keys.COMPLAINT_OPENED, "opened", at(2)),
            (keys.COMPLAINT_ANSWERED, "answered", at(3)),
        ]:
            add_transition(
                session, deal, key=key, stage=deal.stage, event=event, actor="test", at=moment
            )
    with session_scope() as session:
        deal = get_deal(session, deal_with(), for_update=True)
        for key, event, moment in [
            (keys.SURVEY_ANSWERED, survey_event(6, "Li Wei"), at(3)),
            (keys.COMPLAINT_OPENED, "opened", at(3)),  # never answered: late by the 5th
        ]:
            add_transition(
                session, deal, key=key, stage=deal.stage, event=event, actor="test", at=moment
            )
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        week = figures(session, matrix, WEEK)
    assert sorted(week.satisfaction) == [4, 6]
    assert on_time()[COMPLAINTS] == (1, 1)


def test_the_board_lists_the_duties_past_their_day() -> None:
    from dealflow.reports.board import late_duties

    archive = deal_with((keys.ARCHIVE_REQUESTED, at(2)))  # due Thursday 5 March
    deal_with((keys.ARCHIVE_REQUESTED, at(2)), (keys.ARCHIVED, at(4)))  # done
    silent = deal_with((keys.KICKOFF, FEBRUARY_23))  # week 1 ended 2 March, no report
    deal_with((keys.KICKOFF, FEBRUARY_23), (keys.progress_report(1), at(1)))  # reported
    complaint = deal_with((keys.COMPLAINT_OPENED, at(2)))  # 16 working hours: 4 March
    deal_with((keys.COMPLAINT_OPENED, at(2)), (keys.COMPLAINT_ANSWERED, at(3)))
    asked = deal_with((keys.REPURCHASE_REQUESTED, at(1)))  # reminded 8 March
    matrix = load_matrix(get_settings().matrix_path)
    now = at(9, 9)  # Monday 9 March, 09:00 UTC: week 2 of the deliveries ends at 10:00
    with session_scope() as session:
        late = {
            (d.deal_id, d.duty): (d.due, d.days_late) for d in late_duties(session, matrix, now)
        }
    assert late == {
        (archive, "Archive the signed contract"): (dt.date(2026, 3, 5), 4),
        (silent, "Progress report for delivery week 1"): (dt.date(2026, 3, 2), 7),
        (complaint, "Answer the customer's complaint"): (dt.date(2026, 3, 4), 5),
        (asked, "Record the repurchase conversation"): (dt.date(2026, 3, 8), 1),
    }
