"""Customer success after the customer's acceptance: the matrix's ``success_role`` takes
the deal over, and the customer's contact gets a satisfaction survey by signed link. A
score of 6 or less opens a complaint that the success role answers within
``complaint_business_hours`` on the team's calendar; the sla-sweep escalates it to
``complaint_escalate_to`` when it is not answered in time. Beside the deal's run after
the hand-over: nothing waits for the survey or the complaint."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, Purpose, sign
from dealflow.infra.records import Recorded, add_transition, get_deal, intake_of, record_once
from dealflow.infra.rendering import translate
from models import keys
from models.deal import DealIntake
from models.matrix import Matrix, MatrixPerson, load_matrix
from models.satisfaction import survey_event
from models.settings import get_settings
from models.tables import Deal, StageTransition
from tasks.deal_effect import deal_effect
from tasks.delivery_progress import customer_contact
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver

SURVEY_LINK_DAYS = 30
LOWEST_CONTENT_SCORE = 7  # a score below it (0-6) opens a complaint
MAX_COMMENT = 2000


class SatisfactionError(ValueError):
    """Nothing was recorded (nor sent); the message says why."""


def survey_link(claim: LinkClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/survey/{sign(claim, settings.signing_key())}"


def _entry(session: Session, deal_id: str, key: str) -> StageTransition | None:
    return session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal_id, StageTransition.key == key
        )
    )


def _holders(matrix: Matrix, role: str | None, team: str) -> list[MatrixPerson]:
    return matrix.people_for(role, team) if role else []


def _names(people: list[MatrixPerson]) -> str:
    return ", ".join(p.name for p in people)


@effect_task("hand-to-customer-success")
def hand_to_customer_success(deal_id: str) -> None:
    """After the customer's acceptance: tell the holders of the matrix's ``success_role``
    that they take the deal over (the sales rep in copy), and send the customer's first
    contact (else the billing contact) a satisfaction survey by signed link, in the
    customer's language. Once each; nothing when the matrix names no success role."""
    with deal_effect(deal_id) as effect:
        matrix, deal, intake = effect.matrix, effect.deal, effect.intake
        holders = _holders(matrix, matrix.handoff.success_role, deal.team)
        if not holders:
            return
        contact = customer_contact(intake)
        effect.record(
            keys.SUCCESS_HANDED_OVER,
            f"Customer success takes over: {_names(holders)}; satisfaction survey sent to "
            f"{contact.name} <{contact.email}>",
        )
        handed = _entry(effect.session, deal_id, keys.SUCCESS_HANDED_OVER)
        assert handed is not None
        expires = handed.at + dt.timedelta(days=SURVEY_LINK_DAYS)
        claim = LinkClaim(
            deal_id,
            keys.SURVEY_STEP,
            contact.email,
            deal.flow_run_id or "",
            int(expires.timestamp()),
            purpose=Purpose.SURVEY.value,
        )
        words = {"title": deal.title, "deal_id": deal_id}
        language = matrix.language_of(holders[0].email, deal.team)
        effect.send(
            OutgoingEmail(
                key=keys.deal_mail(deal_id, keys.SUCCESS_HANDED_OVER),
                kind="success-handover",
                deal_id=deal_id,
                to=[p.email for p in holders],
                cc=[deal.sales_rep_email],
                subject=translate(
                    language, "Customer success takes over: %(title)s (%(deal_id)s)", **words
                ),
                language=language,
                template="success_handover",
                context={"deal": intake, "holders": _names(holders), "contact": contact},
            )
        )
        language = matrix.customer_language(intake)
        effect.send(
            OutgoingEmail(
                key=keys.survey_mail(deal_id),
                kind="satisfaction-survey",
                deal_id=deal_id,
                to=[contact.email],
                subject=translate(language, "How did we do? %(title)s", **words),
                language=language,
                template="satisfaction_survey",
                context={
                    "deal": intake,
                    "contact": contact,
                    "link": survey_link(claim),
                    "expires": expires,
                },
            )
        )


def contact_name(intake: DealIntake, email: str) -> str:
    """The name of the customer's contact with ``email``, else the address itself."""
    people = [*intake.customer.contacts, intake.customer.billing_contact]
    return next((p.name for p in people if p.email.lower() == email.lower()), email)


def complaint_due(matrix: Matrix, team: str, opened_at: dt.datetime) -> dt.datetime:
    """When a complaint opened at ``opened_at`` must be answered: the matrix's
    ``complaint_business_hours`` later on the team's calendar."""
    return matrix.complaint_due(team, opened_at)


@dataclass(frozen=True)
class SurveyAnswered:
    """The survey's answer as recorded: now (``new``) or before, by whom and when; and
    when the complaint it opened must be answered, if it opened one now."""

    new: bool
    by: str
    at: dt.datetime
    complaint_due: dt.datetime | None = None


def parse_score(text: str) -> int:
    """The survey's score from a form field: a whole number from 0 to 10."""
    try:
        score = int(text.strip())
    except ValueError as exc:
        raise SatisfactionError(
            f"the score must be a whole number from 0 to 10 (got {text!r})"
        ) from exc
    if not 0 <= score <= 10:
        raise SatisfactionError(f"the score must be a whole number from 0 to 10 (got {text!r})")
    return score


def record_survey_answer(
    deal_id: str, score: int, comment: str, by: str, now: dt.datetime | None = None
) -> SurveyAnswered:
    """Record once the customer's answer to the satisfaction survey: ``score`` (0-10) and
    ``comment``, by the contact ``by``. A score of 6 or less opens a complaint in the same
    transaction (its email to the success role goes after the commit). A second answer
    changes nothing and says who answered and when. SatisfactionError for a score out of
    range or a comment too long; DealNotFound for no such deal."""
    if not 0 <= score <= 10:
        raise SatisfactionError(f"the score must be a whole number from 0 to 10 (got {score})")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise SatisfactionError(f"the comment is longer than {MAX_COMMENT} characters")
    now = now or utcnow()
    with deal_effect(deal_id, lock=True) as effect:
        matrix, deal, intake = effect.matrix, effect.deal, effect.intake
        earlier = _entry(effect.session, deal_id, keys.SURVEY_ANSWERED)
        if earlier is not None:
            return SurveyAnswered(False, earlier.actor, earlier.at)
        name = contact_name(intake, by)
        effect.record(
            keys.SURVEY_ANSWERED,
            survey_event(score, name),
            actor=by,
            comment=comment,
            at=now,
        )
        holders = _holders(matrix, matrix.handoff.success_role, deal.team)
        if score >= LOWEST_CONTENT_SCORE or not holders:
            return SurveyAnswered(True, by, now)
        due = complaint_due(matrix, deal.team, now)
        effect.record(
            keys.COMPLAINT_OPENED,
            f"Complaint opened: satisfaction {score}/10 from {name}; {_names(holders)} to "
            f"answer it by {due:%Y-%m-%d %H:%M} UTC",
            comment=comment,
            at=now,
        )
        language = matrix.language_of(holders[0].email, deal.team)
        due_text = f"{due:%Y-%m-%d %H:%M} UTC"
        effect.send(
            OutgoingEmail(
                key=keys.deal_mail(deal_id, keys.COMPLAINT_OPENED),
                kind="complaint-opened",
                deal_id=deal_id,
                to=[p.email for p in holders],
                cc=[deal.sales_rep_email],
                subject=translate(
                    language,
                    "Complaint to answer by %(due)s: %(title)s (%(deal_id)s)",
                    due=due_text,
                    title=deal.title,
                    deal_id=deal_id,
                ),
                language=language,
                template="complaint",
                context={
                    "deal": intake,
                    "contact": name,
                    "score": score,
                    "comment": comment,
                    "due": due,
                    "escalated": False,
                    "holders": _names(holders),
                },
            )
        )
    return SurveyAnswered(True, by, now, due)


def answer_complaint(
    deal_id: str, answer: str, by: str | None = None, now: dt.datetime | None = None
) -> Recorded:
    """Record once the answer to the deal's open complaint (the record's comment), by
    ``by`` (default: the first holder of the matrix's ``success_role`` for the deal's
    team, whose duty it is). SatisfactionError when no complaint is open or the answer is
    empty or too long; a second answer changes nothing and says who answered and when;
    DealNotFound for no such deal."""
    answer = answer.strip()
    if not answer:
        raise SatisfactionError("give the answer to the customer (--answer)")
    if len(answer) > MAX_COMMENT:
        raise SatisfactionError(f"the answer is longer than {MAX_COMMENT} characters")

    def success_person(deal: Deal) -> str:
        if by:
            return by
        matrix = load_matrix(get_settings().matrix_path)
        holders = _holders(matrix, matrix.handoff.success_role, deal.team)
        if not holders:
            raise SatisfactionError("the matrix names no success_role: say who answered")
        return holders[0].email

    return record_once(
        deal_id,
        keys.COMPLAINT_ANSWERED,
        after=keys.COMPLAINT_OPENED,
        refuse=lambda _deal: SatisfactionError(f"no complaint is open for {deal_id}"),
        event=f"Complaint answered: {answer}",
        comment=answer,
        by=success_person,
        at=now,
    )


def open_complaints() -> list[str]:
    """Deals with a complaint neither answered nor escalated yet."""
    done = aliased(StageTransition)
    with session_scope() as session:
        return list(
            session.scalars(
                select(StageTransition.deal_id)
                .where(
                    StageTransition.key == keys.COMPLAINT_OPENED,
                    ~exists().where(
                        done.deal_id == StageTransition.deal_id,
                        done.key.in_([keys.COMPLAINT_ANSWERED, keys.COMPLAINT_ESCALATED]),
                    ),
                )
                .order_by(StageTransition.at)
            )
        )


def follow_up_complaint(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Once the deal's complaint is past its due time at ``now`` and not answered, tell
    whoever holds the matrix's ``complaint_escalate_to`` (the success role in copy), once.
    What was sent, or None."""
    escalate_to = matrix.handoff.complaint_escalate_to
    if escalate_to is None:
        return None
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        opened = _entry(session, deal_id, keys.COMPLAINT_OPENED)
        if opened is None or _answered_or_escalated(session, deal):
            return None
        due = complaint_due(matrix, deal.team, opened.at)
        if now < due:
            return None
        told = matrix.people_for(escalate_to, deal.team)
        holders = _holders(matrix, matrix.handoff.success_role, deal.team)
        to = [p.email for p in told]
        add_transition(
            session,
            deal,
            key=keys.COMPLAINT_ESCALATED,
            stage=deal.stage,
            event=f"The complaint was to be answered by {due:%Y-%m-%d %H:%M} UTC and is not: "
            f"told {_names(told)}",
            actor="dealflow",
            at=now,
        )
        language = matrix.language_of(to[0], deal.team)
        intake = intake_of(deal)
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, keys.COMPLAINT_ESCALATED),
            kind="complaint-escalation",
            deal_id=deal_id,
            to=to,
            cc=[p.email for p in holders if p.email not in to],
            subject=translate(
                language,
                "Complaint not answered in time: %(title)s (%(deal_id)s)",
                title=deal.title,
                deal_id=deal_id,
            ),
            language=language,
            template="complaint",
            context={
                "deal": intake,
                "contact": "",
                "score": None,
                "comment": opened.comment,
                "due": due,
                "escalated": True,
                "holders": _names(holders),
            },
        )
    deliver(mail)
    return f"{deal_id}/{keys.COMPLAINT_ESCALATED} to {', '.join(to)}"


def _answered_or_escalated(session: Session, deal: Deal) -> bool:
    return any(
        _entry(session, deal.id, key) is not None
        for key in (keys.COMPLAINT_ANSWERED, keys.COMPLAINT_ESCALATED)
    )
