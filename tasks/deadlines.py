"""The sla-sweep's follow-ups on work past its time limit, once per level: approval gates
(reminders, then escalation: ``gate_follow_up``), the stages before the contract (a
reminder, then the accountable: ``stage_follow_up``) and signed contracts still to archive
(``archive_follow_up``), paid deals due for a repurchase conversation
(``repurchase_follow_up``), delivery's weekly progress reports not recorded
(``progress_follow_up``), customer complaints not answered in time (``satisfaction``);
and the emails whose send failed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from functools import partial
from typing import NamedTuple

from models.matrix import load_matrix
from models.settings import get_settings
from tasks.archive_follow_up import follow_up_archive, open_archives
from tasks.effect import effect_task, is_transient
from tasks.gate_follow_up import follow_up, open_gates
from tasks.mailer import resend_failed
from tasks.progress_follow_up import follow_up_progress, open_deliveries
from tasks.repurchase_follow_up import follow_up_repurchase, open_repurchases
from tasks.satisfaction import follow_up_complaint, open_complaints
from tasks.stage_follow_up import follow_up_stage, open_stages


class FollowUp(NamedTuple):
    """What a sweep did about one deal."""

    deal_id: str
    action: str

    def __str__(self) -> str:
        return self.action


def _each(work: Iterable[tuple[str, Callable[[], str | None]]]) -> list[FollowUp]:
    """Run each deal's follow-up; one whose email could not go out does not stop the rest
    (its effect is recorded and the outbox keeps the email for the next sweep)."""
    done = []
    for deal_id, act in work:
        try:
            action = act()
        except Exception as exc:
            if not is_transient(exc):
                raise
            action = f"{deal_id}: email held back ({type(exc).__name__}), resent next sweep"
        if action:
            done.append(FollowUp(deal_id, action))
    return done


@effect_task("follow-up-overdue-gates")
def follow_up_overdue_gates(now: dt.datetime) -> list[FollowUp]:
    """Remind or escalate every open gate past its limit at ``now``; what was sent."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up, matrix, deal_id, gate, now)) for deal_id, gate in open_gates()
    )


@effect_task("follow-up-overdue-stages")
def follow_up_overdue_stages(now: dt.datetime) -> list[FollowUp]:
    """Remind or escalate every stage before the contract past its limit at ``now``."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up_stage, matrix, deal_id, now)) for deal_id in open_stages()
    )


@effect_task("follow-up-archiving")
def follow_up_archiving(now: dt.datetime) -> list[FollowUp]:
    """Remind administration of every signed contract due to be archived at ``now``, and
    escalate those overdue."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up_archive, matrix, deal_id, now)) for deal_id in open_archives()
    )


@effect_task("follow-up-repurchase")
def follow_up_repurchases(now: dt.datetime) -> list[FollowUp]:
    """Ask the sales rep of every deal paid long enough before ``now`` for a repurchase
    conversation, and remind those asked long enough ago who have not recorded it.
    Nothing when the matrix asks for no repurchase follow-up."""
    matrix = load_matrix(get_settings().matrix_path)
    after_days = matrix.handoff.repurchase_after_days
    if after_days is None:
        return []
    return _each(
        (deal_id, partial(follow_up_repurchase, matrix, deal_id, now))
        for deal_id in open_repurchases(now, after_days)
    )


@effect_task("follow-up-delivery-progress")
def follow_up_delivery_progress(now: dt.datetime) -> list[FollowUp]:
    """Remind the rep of every delivery whose last week ended at ``now`` without a
    progress report, and tell the accountable manager of those two weeks behind."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up_progress, matrix, deal_id, now))
        for deal_id in open_deliveries()
    )


@effect_task("follow-up-complaints")
def follow_up_complaints(now: dt.datetime) -> list[FollowUp]:
    """Escalate every customer complaint still unanswered past its due time at ``now``
    to the matrix's ``complaint_escalate_to``, once each."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up_complaint, matrix, deal_id, now))
        for deal_id in open_complaints()
    )


@effect_task("resend-failed-mail")
def resend_failed_mail() -> list[str]:
    """Send again the emails whose send failed earlier; their keys."""
    return resend_failed()
