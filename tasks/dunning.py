"""The dunning ladder: each collectible invoice reaches the highest level due, once.

Set-based and batched: invoices are read a batch at a time (keyset on id), and each
batch's levels are claimed in one transaction (``dunning_batch``). Only then are the
emails sent, over one SMTP connection. Two checks at once claim each level once; a check
that crashes after the commit leaves its emails queued for the next one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from dealflow.finance.days_overdue import DaysOverdue
from models.matrix import load_matrix
from models.settings import Settings, get_settings
from tasks.dunning_batch import claim_batch, preview_batch
from tasks.dunning_mail import Escalation
from tasks.effect import effect_task
from tasks.mailer import send_outbox
from tasks.smtp import SmtpSession

SHOWN = 200  # escalations listed by name in the report; the rest are counted


@dataclass
class DunningSummary:
    by_level: Counter[str] = field(default_factory=Counter)
    shown: list[Escalation] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    emails_sent: int = 0
    emails_queued: int = 0
    smtp_connections: int = 0
    unknown_teams: set[str] = field(default_factory=set)  # invoices of these were skipped

    @property
    def escalated(self) -> int:
        return sum(self.by_level.values())

    def add(self, escalations: list[Escalation], holds: list[str]) -> None:
        for escalation in escalations:
            self.by_level[escalation.level] += 1
        self.shown += escalations[: max(0, SHOWN - len(self.shown))]
        self.holds += holds


@dataclass(frozen=True)
class Foreseen:
    """One invoice that would reach one level, and who would be told."""

    escalation: Escalation
    letter_to: list[str]  # the customer's billing address, when the level writes to them
    told: list[tuple[str, str]]  # (email, name) of everyone whose digest would list it


@dataclass
class DunningPreview:
    """What the dunning ladder would do at ``now``: nothing of it was done."""

    now: dt.datetime
    levels: list[Foreseen] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)  # customers put on collections hold
    digests: int = 0  # one per person told, per batch of invoices
    unknown_teams: set[str] = field(default_factory=set)  # invoices of these would be skipped

    @property
    def letters(self) -> int:
        return sum(1 for level in self.levels if level.letter_to)

    @property
    def by_level(self) -> Counter[str]:
        return Counter(level.escalation.level for level in self.levels)


def preview_dunning_ladder(now: dt.datetime, settings: Settings | None = None) -> DunningPreview:
    """What ``apply_dunning_ladder`` would do at ``now``, decided by the same code
    (``preview_batch``), batch by batch, without writing, locking or sending anything."""
    settings = settings or get_settings()
    matrix = load_matrix(settings.matrix_path)
    preview = DunningPreview(now)
    if not matrix.dunning.levels:
        return preview
    days_overdue = DaysOverdue(matrix, matrix.dunning, now)
    after_id, held = 0, set[str]()
    while True:
        last_id, done = preview_batch(matrix, days_overdue, after_id, preview.unknown_teams, held)
        if last_id is None:
            break
        after_id = last_id
        for escalation in done.escalations:
            letters = [m for m in done.letters if m.context["invoice"] is escalation]
            told = [
                person
                for person, items in sorted(done.digests.items())
                if any(item is escalation for item in items)
            ]
            preview.levels.append(Foreseen(escalation, [to for m in letters for to in m.to], told))
        preview.digests += len(done.digests)
        new = sorted(set(done.holds) - held)
        preview.holds += new
        held.update(new)
    return preview


@effect_task("apply-dunning-ladder")
def apply_dunning_ladder(now: dt.datetime, settings: Settings | None = None) -> DunningSummary:
    """Bring every collectible invoice to the highest ladder level due at ``now``: claim
    the levels batch by batch, then send the batch's letters over one SMTP connection."""
    settings = settings or get_settings()
    matrix = load_matrix(settings.matrix_path)
    summary = DunningSummary()
    if not matrix.dunning.levels:
        return summary
    days_overdue = DaysOverdue(matrix, matrix.dunning, now)
    after_id = 0
    with SmtpSession(settings) as smtp:
        while True:
            last_id, escalations, holds, keys = claim_batch(
                matrix, days_overdue, after_id, now, settings, summary.unknown_teams
            )
            if last_id is None:
                break
            after_id = last_id
            summary.add(escalations, holds)
            summary.emails_queued += len(keys)
            if keys:
                summary.emails_sent += len(send_outbox(keys, settings, smtp))
        summary.smtp_connections = smtp.connections
    return summary
