"""Recording the contract signed by the customer (link or CLI): resumes the deal's run,
which then kicks off delivery and sends the invoices due at signing and kickoff."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.answers.waiting_run import Earlier, Outcome, Patience, answer_waiting_run
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, approvals, wait_on
from dealflow.infra.words import Words
from models import keys
from models.keys import SIGNING_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.signing import ContractSigned
from models.tables import Deal, StageTransition

SIGNED_STAGE = "signed"
MAX_SIGNER = 200
MAX_DOCUMENT = 200


class SigningError(ValueError):
    """The signed contract cannot be recorded so; nothing was changed. The message says
    why, in the reader's language with ``said.in_language``."""

    def __init__(self, said: Words) -> None:
        super().__init__(said)
        self.said = said


def signed_entry(deal_id: str) -> StageTransition | None:
    with session_scope() as session:
        return _signed(session, deal_id)


def _signed(session: Session, deal_id: str) -> StageTransition | None:
    return session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal_id, StageTransition.key == keys.SIGNED
        )
    )


def already_signed(deal_id: str, earlier: Earlier) -> Words:
    if earlier.at is None:
        return Words(
            "The signed contract of %(deal_id)s was already recorded by %(by)s.",
            deal_id=deal_id,
            by=earlier.by,
        )
    return Words(
        "The signed contract of %(deal_id)s was already recorded by %(by)s at %(at)s.",
        deal_id=deal_id,
        by=earlier.by,
        at=earlier.at,
    )


def last_approval_day(session: Session, deal: Deal, zone: dt.tzinfo) -> dt.date | None:
    """The team's day of the deal's last approval (of its current revision)."""
    decided = [row.decided_at for row in approvals(session, deal.id) if row.decided_at]
    return max(decided).astimezone(zone).date() if decided else None


def check_signature(signed_by: str, document: str) -> None:
    """SigningError unless who signed and the document are given (and not too long)."""
    if not signed_by.strip():
        raise SigningError(Words("Say who signed the contract for the customer."))
    if not document.strip():
        raise SigningError(Words("Give the signed contract's document reference or file name."))
    if len(signed_by) > MAX_SIGNER or len(document) > MAX_DOCUMENT:
        raise SigningError(Words("The name or the document reference is too long."))


def store_signature(session: Session, deal: Deal, signed: ContractSigned) -> None:
    """Put the signed contract on the deal's timeline (once): by whoever records it as
    they resume the run, or by the run itself when their commit was lost."""
    add_transition(
        session,
        deal,
        key=keys.SIGNED,
        stage=SIGNED_STAGE,
        event=f"Contract signed for the customer by {signed.signed_by} on "
        f"{signed.signed_on.isoformat()}, document {signed.document}",
        actor=signed.recorded_by,
    )
    wait_on(deal, None, None, None)


def record_signature(
    deal_id: str,
    *,
    signed_by: str,
    document: str,
    signed_on: dt.date | None = None,
    by: str | None = None,
    run_id: str | None = None,
    patience: Patience | None = None,
) -> Outcome:
    """Record the signed contract once and resume the run waiting for it; on RESUMED the
    outcome's answer is the ContractSigned.

    ``by`` defaults to the deal's sales rep; ``run_id``, when given (a link), must be the
    deal's run. Recorded and resumed in one transaction: if the workflow server refuses,
    nothing is kept. SigningError for a date that cannot be (in the future, before the
    last approval) or a missing name or document.
    """
    signed_by, document = signed_by.strip(), document.strip()
    check_signature(signed_by, document)
    matrix = load_matrix(get_settings().matrix_path)

    def earlier(session: Session, deal: Deal) -> Earlier | None:
        entry = _signed(session, deal.id)
        return Earlier(entry.actor, entry.at, keys.SIGNED) if entry is not None else None

    def record(session: Session, deal: Deal) -> ContractSigned:
        email = by or deal.sales_rep_email
        person = next((p for p in matrix.people if p.email.lower() == email.lower()), None)
        name = (
            deal.sales_rep_name
            if email.lower() == deal.sales_rep_email.lower()
            else (person.name if person else email)
        )
        zone = matrix.calendar(deal.team).zone
        today = utcnow().astimezone(zone).date()
        day = signed_on or today
        if day > today:
            raise SigningError(Words("The signing date %(day)s is in the future.", day=day))
        approved = last_approval_day(session, deal, zone)
        if approved is not None and day < approved:  # both on the team's calendar
            raise SigningError(
                Words(
                    "The signing date %(day)s is before the last approval (%(approved)s).",
                    day=day,
                    approved=approved,
                )
            )
        signed = ContractSigned(
            signed_by=signed_by,
            signed_on=day,
            document=document,
            recorded_by=email,
            recorded_by_name=name,
        )
        store_signature(session, deal, signed)
        return signed

    return answer_waiting_run(
        deal_id, SIGNING_WAIT, record=record, earlier=earlier, run_id=run_id, patience=patience
    )
