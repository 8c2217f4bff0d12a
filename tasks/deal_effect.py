"""The one way a task acts on a deal: inside one transaction it has the deal's row, the
matrix in force and the settings; it records each effect once under its timeline key
and queues each email under its outbox key. The emails go out after the commit, so a
slow mail server never holds the deal's row (or, on SQLite, the database) and a crash
between commit and send is repaired by running the task again: the timeline entry is
already there, and the email, keyed, goes out at most once more (same Message-ID)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal, intake_of, wait_on
from models.deal import DealIntake
from models.matrix import Matrix, load_matrix
from models.settings import Settings, get_settings
from models.tables import Deal, StageTransition
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver_or_queue


@dataclass
class DealEffect:
    session: Session
    deal: Deal
    matrix: Matrix
    settings: Settings
    outbox: list[OutgoingEmail] = field(default_factory=list)

    @cached_property
    def intake(self) -> DealIntake:
        return intake_of(self.deal)

    def done(self, key: str) -> bool:
        """Whether the effect under timeline ``key`` was already recorded."""
        found = self.session.scalar(
            select(StageTransition.id).where(
                StageTransition.deal_id == self.deal.id, StageTransition.key == key
            )
        )
        return found is not None

    def record(
        self,
        key: str,
        event: str,
        *,
        stage: str | None = None,
        actor: str = "dealflow",
        comment: str = "",
        at: dt.datetime | None = None,
    ) -> bool:
        """Put ``event`` on the deal's timeline under ``key`` unless it is there, moving
        the deal to ``stage`` (default: where it is); True if recorded now."""
        return add_transition(
            self.session,
            self.deal,
            key=key,
            stage=stage or self.deal.stage,
            event=event,
            actor=actor,
            comment=comment,
            at=at,
        )

    def wait_on(self, email: str | None, name: str | None, since: dt.datetime | None) -> None:
        wait_on(self.deal, email, name, since)

    def waiting_on_nobody(self) -> None:
        wait_on(self.deal, None, None, None)

    def send(self, mail: OutgoingEmail) -> None:
        """Email ``mail`` once its effect is committed (once per outbox key)."""
        self.outbox.append(mail)


@contextmanager
def deal_effect(deal_id: str, *, lock: bool = False) -> Iterator[DealEffect]:
    """Act on deal ``deal_id`` in one transaction (holding its row when ``lock``); the
    emails queued with ``send`` go out after the commit, not if the block fails."""
    settings = get_settings()
    matrix = load_matrix(settings.matrix_path)
    with session_scope() as session:
        effect = DealEffect(session, get_deal(session, deal_id, for_update=lock), matrix, settings)
        yield effect
    for mail in effect.outbox:
        deliver_or_queue(mail, settings, matrix)
