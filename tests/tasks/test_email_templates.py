"""Every email template, rendered with realistic data and composed as it is sent: the
text part keeps its lines, the headers parse back as written (UTF-8 too), From carries a
name, people are greeted by name, and the wording counts right."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from dataclasses import replace
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from dealflow.infra.rendering import count
from dealflow.intake.submit import load_deal_file
from dealflow.reports.period import ReportPeriod
from dealflow.reports.tables import Table
from models.deal import DealIntake
from models.finance import DunningLevel
from models.settings import PROJECT_ROOT, Settings
from models.tables import Invoice
from tasks.dunning import DunningSummary
from tasks.dunning_mail import Escalation, customer_letter, digest
from tasks.duty_links import DutyLink
from tasks.email_message import OutgoingEmail, as_text, compose, email_text

WHEN = dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)
TODAY = dt.date(2026, 12, 4)
PROGRESS = DutyLink("https://dealflow.example/progress/TOKEN", WHEN)
REPURCHASE = DutyLink("https://dealflow.example/repurchase/TOKEN", WHEN)


def deal(name: str, **changes: object) -> DealIntake:
    intake = load_deal_file(PROJECT_ROOT / "examples" / f"{name}.json")
    return intake.model_copy(update=changes)


ACME = deal("acme")  # EUR, billing contact Petra Schulz
XINGHE = deal("xinghe", title="星河 production line monitoring (杭州)")  # CNY, UTF-8 title
MANAGER = SimpleNamespace(name="Jonas Weber", email="jonas.weber@example.com")
LEVELS = {
    "reminder": DunningLevel(
        name="reminder", days=1, notify=["customer"], title="Payment reminder"
    ),
    "rep-and-finance": DunningLevel(
        name="rep-and-finance", days=7, notify=["sales_rep", "finance"], title="7 days overdue"
    ),
    "collections": DunningLevel(
        name="collections",
        days=30,
        notify=["sales_director"],
        hold=True,
        title="30 days overdue: collections",
    ),
}


def escalation(number: str, customer: str, level: str, days: int, currency: str) -> Escalation:
    return Escalation(
        invoice=number,
        deal_id=number.removeprefix("INV-").rsplit("-", 1)[0],
        customer=customer,
        level=level,
        level_title=LEVELS[level].label,
        days_overdue=days,
        balance=Decimal("12345.60"),
        currency=currency,
        due_date=TODAY - dt.timedelta(days=days),
        hold=LEVELS[level].hold,
    )


ITEMS = [
    escalation("INV-ACME-2026-014-01", ACME.customer.name, "rep-and-finance", 8, "EUR"),
    escalation("INV-ACME-2026-014-02", ACME.customer.name, "rep-and-finance", 1, "EUR"),
    escalation("INV-XINGHE-2026-022-01", XINGHE.customer.name, "collections", 31, "CNY"),
]


def invoice(number: str, intake: DealIntake, paid: str = "0") -> Invoice:
    return Invoice(
        deal_id=intake.deal_id,
        number=number,
        sequence=1,
        label="On signing",
        milestone="signing",
        amount=Decimal("96000.00"),
        currency=intake.currency,
        issue_date=TODAY - dt.timedelta(days=31),
        due_date=TODAY - dt.timedelta(days=1),
        status="partially_paid" if paid != "0" else "open",
        billing_email=intake.customer.billing_contact.email,
        customer_name=intake.customer.name,
        paid_amount=Decimal(paid),
    )


def mail(template: str, subject: str, context: dict[str, object]) -> OutgoingEmail:
    return OutgoingEmail(
        key=f"test/{template}",
        kind=template,
        deal_id=None,
        to=["someone@example.com"],
        subject=subject,
        template=template,
        context=context,
    )


def summary() -> DunningSummary:
    done = DunningSummary()
    done.add(ITEMS, [XINGHE.customer.name])
    return done


def weekly() -> dict[str, object]:
    period = ReportPeriod(dt.date(2026, 11, 23), dt.date(2026, 11, 29), "Europe/Berlin")
    return {
        "title": "Dealflow pipeline review, 2026-11-23 to 2026-11-29",
        "period": period,
        "previous": period.previous,
        "generated": WHEN,
        "tables": [
            Table("Stage funnel", ["Stage", "Deals"], [["approval", "3"], ["invoiced", "2"]]),
            Table("Overdue invoices", ["Bucket", "EUR"], []),
        ],
        "images": {"funnel": "cid:funnel", "cycle-times": "cid:cycle", "aging": "cid:aging"},
    }


def gate(title: str, assignee: str) -> dict[str, object]:
    return {"title": title, "assignee_name": assignee}


def approval(name: str, comment: str = "") -> dict[str, object]:
    return {
        "gate": "manager",
        "decision": "approved",
        "decided_by": "mara@example.com",
        "decided_by_name": name,
        "decided_at": WHEN,
        "comment": comment,
    }


def sent(outgoing: OutgoingEmail) -> EmailMessage:
    """The message as a receiving mail client reads it."""
    settings = Settings(_env_file=None, mail_from="dealflow@example.com")
    message = email.message_from_bytes(
        email_text(outgoing, settings).encode("ascii"), policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    return message


KICKOFF = {
    "deal": XINGHE,
    "manager": MANAGER,
    "confirm_by": TODAY,
    "success": "Kai Brennan",
    "progress_link": PROGRESS,
}


def text_of(outgoing: OutgoingEmail) -> str:
    part = sent(outgoing).get_body(("plain",))
    assert part is not None
    return part.get_content()


def test_a_digest_lists_one_invoice_per_line() -> None:
    text = text_of(digest("finance@example.com", "Fatima Okafor", ITEMS, 7))
    for item in ITEMS:
        [line] = [line for line in text.splitlines() if item.invoice in line]
        assert line.startswith(f"- {item.invoice}, {item.customer} (deal {item.deal_id}): ")


def test_a_subject_folded_at_78_columns_reads_back_without_a_leading_space() -> None:
    # As tasks/handoff.py writes it: 72 characters, which the standard library's folding
    # moves whole onto a continuation line ("Subject:", a line break, " Invoice ...").
    subject = f"Invoice INV-{ACME.deal_id}-01 for {ACME.title}"
    context = {"deal": ACME, "invoice": invoice(f"INV-{ACME.deal_id}-01", ACME)}
    outgoing = mail("invoice", subject, context | {"part": ACME.payment_terms.schedule[0]})
    assert sent(outgoing)["Subject"] == subject
    for length in range(60, 90):  # every length around the fold, ASCII and UTF-8
        for title in (ACME.title, XINGHE.title):
            subject = f"Invoice INV-{ACME.deal_id}-01 for {title} and its second phase"
            subject = subject[:length].strip()
            assert sent(replace(outgoing, subject=subject))["Subject"] == subject


def test_from_carries_the_sender_name() -> None:
    [sender] = sent(mail("kickoff", "Kickoff", KICKOFF))["From"].addresses
    assert sender == Address("Dealflow", addr_spec="dealflow@example.com")


def test_a_utf8_sender_name_and_subject_are_encoded() -> None:
    settings = Settings(
        _env_file=None, mail_from="dealflow@example.com", mail_from_name="星河 Dealflow"
    )
    outgoing = mail("kickoff", f"Delivery kickoff: {XINGHE.title} ({XINGHE.deal_id})", KICKOFF)
    raw = as_text(compose(outgoing, settings)).encode("ascii")
    assert raw.isascii(), "headers are RFC 2047 encoded, the text part transfer-encoded"
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == outgoing.subject
    assert message["From"].addresses[0].display_name == "星河 Dealflow"
    body = message.get_body(("plain",))
    assert body is not None and XINGHE.title in body.get_content()


def test_a_sender_without_a_name_is_the_address_alone() -> None:
    settings = Settings(_env_file=None, mail_from="dealflow@example.com", mail_from_name="")
    message = compose(mail("kickoff", "Kickoff", KICKOFF), settings)
    assert message["From"] == "dealflow@example.com"


def test_days_overdue_are_counted_in_the_singular_and_the_plural() -> None:
    one, eight = (
        escalation(f"INV-{ACME.deal_id}-01", ACME.customer.name, "rep-and-finance", days, "EUR")
        for days in (1, 8)
    )
    assert one.overdue == "1 day overdue" and eight.overdue == "8 days overdue"
    letter = customer_letter(
        invoice(f"INV-{ACME.deal_id}-01", ACME), LEVELS["reminder"], one, ACME.title, "Petra"
    )
    assert letter.subject.endswith("is 1 day overdue")
    assert "is 1 day overdue." in text_of(letter)
    assert "1 day overdue" in text_of(digest("finance@example.com", "Fatima", [one], 7))
    assert count(1, "escalation") == "1 escalation" and count(0, "escalation") == "0 escalations"


def test_the_customer_letter_greets_the_billing_contact_by_name() -> None:
    letter = customer_letter(
        invoice(f"INV-{ACME.deal_id}-01", ACME),
        LEVELS["reminder"],
        escalation(f"INV-{ACME.deal_id}-01", ACME.customer.name, "reminder", 2, "EUR"),
        ACME.title,
        ACME.customer.billing_contact.name,
    )
    assert text_of(letter).startswith("Dear Petra Schulz,\n")


def test_the_customer_letter_falls_back_when_the_deal_names_no_contact() -> None:
    letter = customer_letter(
        invoice(f"INV-{ACME.deal_id}-01", ACME),
        LEVELS["reminder"],
        escalation(f"INV-{ACME.deal_id}-01", ACME.customer.name, "reminder", 2, "EUR"),
        ACME.title,
        "",
    )
    text = sent(letter).get_body(("plain",))
    assert text is not None and text.get_content().startswith("Dear Sir or Madam,\n")
    assert letter.subject.endswith("is 2 days overdue")


def test_a_reminder_before_the_due_date_keeps_its_paragraphs() -> None:
    letter = customer_letter(
        invoice(f"INV-{ACME.deal_id}-01", ACME),
        LEVELS["reminder"],
        escalation(f"INV-{ACME.deal_id}-01", ACME.customer.name, "reminder", -3, "EUR"),
        ACME.title,
        ACME.customer.billing_contact.name,
    )
    assert letter.subject.startswith(f"Reminder: invoice INV-{ACME.deal_id}-01 is due on ")
    paragraphs = text_of(letter).split("\n\n")
    assert paragraphs[1] == (
        f"A friendly reminder: invoice INV-{ACME.deal_id}-01 for {ACME.title} is due on 2026-12-07."
    )
    assert paragraphs[2].startswith("Invoice number: ")


def test_a_level_title_is_not_repeated_beside_the_days_overdue() -> None:
    [eight, _one, collections] = ITEMS  # levels "7 days overdue", "30 days overdue: collections"
    assert eight.describe() == (
        "INV-ACME-2026-014-01 (Acme Logistics GmbH) is 8 days overdue, 12,345.60 EUR open"
    )
    assert collections.describe().endswith("is 31 days overdue, 12,345.60 CNY open; collections")
    subject = digest("finance@example.com", "Fatima", ITEMS, 7).subject
    assert subject == "Overdue: 3 invoices, up to 31 days overdue, collections hold"


def test_the_payment_check_lists_one_currency_and_one_invoice_per_line() -> None:
    rows = [
        {"currency": currency, "current": "0.00", "1-30": "24,691.20", "31-60": "12,345.60"}
        | {"61-90": "0.00", "90+": "0.00", "total": "37,036.80"}
        for currency in ("CNY", "EUR")
    ]
    context = {"today": TODAY, "rows": rows, "summary": summary(), "closing": ["ACME-2025-001"]}
    lines = text_of(mail("aging_report", "Payment check", context)).splitlines()
    for currency in ("CNY", "EUR"):
        assert (
            f"  {currency}: current 0.00 | 1-30 24,691.20 | 31-60 12,345.60 | 61-90 0.00 | 90+ 0.00 | total 37,036.80"
            in lines
        )
    for item in ITEMS:
        assert f"- {item.describe()}" in lines
    assert f"Put on collections hold: {XINGHE.customer.name}" in lines
    assert "- ACME-2025-001" in lines
    blank_before = [lines[i + 1] for i, line in enumerate(lines[:-1]) if not line]
    assert blank_before == [
        "Open receivables by days overdue:",
        "Escalations made: 3",
        f"Put on collections hold: {XINGHE.customer.name}",
        "Paid deals:",
    ]
    context = {"today": TODAY, "rows": [], "summary": DunningSummary(), "closing": []}
    text = text_of(mail("aging_report", "Payment check", context))
    assert text.endswith("  Nothing is open.\n\nEscalations made: 0\n")


# Template -> (the email as the code builds it, its greeting line, lines the text part has).
CASES: dict[str, tuple[OutgoingEmail, str | None, list[str]]] = {
    "acceptance_request": (
        mail(
            "acceptance_request",
            f"Confirm acceptance: {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "manager": MANAGER,
                "link": "http://127.0.0.1:8000/acceptance/t",
                "released": ["On acceptance"],
                "expires": WHEN,
            },
        ),
        "Hello Jonas Weber,",
        ["Acceptance releases the invoice: On acceptance."],
    ),
    "complaint": (
        mail(
            "complaint",
            f"Complaint to answer by 2026-12-08 09:30 UTC: {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "contact": "Wang Qiang",
                "score": 4,
                "comment": "The sensors arrived late.",
                "due": WHEN,
                "escalated": False,
                "holders": "Kai Brennan",
            },
        ),
        "Hello Kai Brennan,",
        [
            f'  dealflow deal answer-complaint {XINGHE.deal_id} --answer "..."',
            "The sensors arrived late.",
        ],
    ),
    "satisfaction_survey": (
        mail(
            "satisfaction_survey",
            f"How did we do? {ACME.title}",
            {
                "deal": ACME,
                "contact": ACME.customer.contacts[0],
                "link": "http://127.0.0.1:8000/survey/t",
                "expires": WHEN,
            },
        ),
        f"Dear {ACME.customer.contacts[0].name},",
        ["http://127.0.0.1:8000/survey/t"],
    ),
    "success_handover": (
        mail(
            "success_handover",
            f"Customer success takes over: {ACME.title} ({ACME.deal_id})",
            {"deal": ACME, "holders": "Kai Brennan", "contact": ACME.customer.contacts[0]},
        ),
        "Hello Kai Brennan,",
        ["Customer success takes the deal over from the sales rep now."],
    ),
    "archive_follow_up": (
        mail(
            "archive_follow_up",
            f"Archiving overdue: {XINGHE.title} ({XINGHE.deal_id})",
            {"deal": XINGHE, "due": TODAY, "overdue": True, "holders": "Ines Moreau"},
        ),
        None,
        ["and its archiving is not recorded yet. Please follow up with Ines Moreau."],
    ),
    "progress_follow_up": (
        mail(
            "progress_follow_up",
            f"Progress report for week 2 due: {XINGHE.title} ({XINGHE.deal_id})",
            {"deal": XINGHE, "week": 2, "ended": WHEN, "overdue": False, "link": PROGRESS},
        ),
        "Hello Liu Yang,",
        [
            PROGRESS.url,
            f'(or: dealflow deal progress {XINGHE.deal_id} --note "..." [--to-customer])',
        ],
    ),
    "progress_report": (
        mail(
            "progress_report",
            f"Progress report, week 2: {XINGHE.title}",
            {
                "deal": XINGHE,
                "contact": XINGHE.customer.contacts[0],
                "week": 2,
                "note": "Line 1 monitored since Monday.",
            },
        ),
        "Dear Wang Qiang,",
        ["Line 1 monitored since Monday.", f"Our reference: {XINGHE.deal_id}"],
    ),
    "archive_request": (
        mail(
            "archive_request",
            f"Archive the signed contract: {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "due": TODAY,
                "signed": "Contract signed for the customer by Wang Fang on 2026-12-03",
            },
        ),
        "Hello,",
        [f'  dealflow deal archive {XINGHE.deal_id} --reference "..."'],
    ),
    "repurchase_follow_up": (
        mail(
            "repurchase_follow_up",
            f"Repurchase conversation: {XINGHE.title} ({XINGHE.deal_id})",
            {"deal": XINGHE, "paid": TODAY, "reminder": False, "link": REPURCHASE},
        ),
        "Hello Liu Yang,",
        [REPURCHASE.url, f'(or: dealflow deal repurchase {XINGHE.deal_id} --note "...")'],
    ),
    "aging_report": (
        mail(
            "aging_report",
            f"Payment check {TODAY.isoformat()}: 3 escalations",
            {
                "today": TODAY,
                "rows": [
                    {
                        "currency": "CNY",
                        "current": "0.00",
                        "1-30": "0.00",
                        "31-60": "12,345.60",
                        "61-90": "0.00",
                        "90+": "0.00",
                        "total": "12,345.60",
                    },
                    {
                        "currency": "EUR",
                        "current": "0.00",
                        "1-30": "24,691.20",
                        "31-60": "0.00",
                        "61-90": "0.00",
                        "90+": "0.00",
                        "total": "24,691.20",
                    },
                ],
                "summary": summary(),
                "closing": ["ACME-2025-001 (Acme Logistics GmbH)", "GLOBEX-2025-002 (Globex)"],
            },
        ),
        None,
        [
            "- INV-ACME-2026-014-01 (Acme Logistics GmbH) is 8 days overdue, 12,345.60 EUR open",
            "- INV-ACME-2026-014-02 (Acme Logistics GmbH) is 1 day overdue, 12,345.60 EUR open",
            f"- INV-XINGHE-2026-022-01 ({XINGHE.customer.name}) is 31 days overdue, "
            "12,345.60 CNY open; collections",
            "- ACME-2025-001 (Acme Logistics GmbH)",
            "- GLOBEX-2025-002 (Globex)",
        ],
    ),
    "approval_request": (
        mail(
            "approval_request",
            f"Approval needed: {ACME.title} ({ACME.deal_id}) - Finance review",
            {
                "deal": ACME,
                "gate": gate("Finance review", "Mara Jansen"),
                "link": "http://127.0.0.1:8000/approvals/t",
                "expires": WHEN,
                "earlier": [approval("Lena Fischer", "fine"), approval("Tom Berg")],
                "on_behalf_of": None,
            },
        ),
        "Hello Mara Jansen,",
        [
            '  - manager: approved by Lena Fischer at 2026-12-04 09:30 UTC ("fine")',
            "  - manager: approved by Tom Berg at 2026-12-04 09:30 UTC",
        ],
    ),
    "deal_closed": (
        mail(
            "deal_closed",
            f"Paid in full: {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "invoices": [
                    invoice("INV-XINGHE-2026-022-01", XINGHE),
                    invoice("INV-XINGHE-2026-022-02", XINGHE),
                ],
            },
        ),
        "Hello Liu Yang,",
        [
            "- INV-XINGHE-2026-022-01: 96,000.00 CNY, open",
            "- INV-XINGHE-2026-022-02: 96,000.00 CNY, open",
        ],
    ),
    "escalation": (
        mail(
            "escalation",
            f"Escalated to you: {ACME.title} ({ACME.deal_id}) - Finance review",
            {
                "deal": ACME,
                "gate_title": "Finance review",
                "recipient_name": "Sven Koch",
                "original": "Mara Jansen",
                "requested_at": WHEN,
                "overdue_by": "26 business hours",
                "link": "http://127.0.0.1:8000/approvals/t",
                "expires": WHEN,
            },
        ),
        "Hello Sven Koch,",
        ["Review it and decide here:"],
    ),
    "invoice": (
        # As tasks/handoff.py writes it: 72 characters, which the standard library's
        # folding moves whole onto a continuation line ("Subject:\n Invoice ...").
        mail(
            "invoice",
            f"Invoice INV-{ACME.deal_id}-01 for {ACME.title}",
            {
                "deal": ACME,
                "invoice": invoice(f"INV-{ACME.deal_id}-01", ACME),
                "part": ACME.payment_terms.schedule[0],
            },
        ),
        "Dear Petra Schulz,",
        [f"Invoice number: INV-{ACME.deal_id}-01", "Amount due:     96,000.00 EUR"],
    ),
    "kickoff": (
        mail(
            "kickoff",
            f"Delivery kickoff: {XINGHE.title} ({XINGHE.deal_id})",
            KICKOFF,
        ),
        "Hello Jonas Weber,",
        [
            "Customer success (Kai Brennan) is in copy: they take the deal over once the",
            "  - Zhang Li <finance@xinghe-manufacturing.example> (billing)",
            "  - Wang Qiang <wang.qiang@xinghe-manufacturing.example> (Plant director), "
            "+86 571 5550 1288",
            "  - Zhao Min <zhao.min@xinghe-manufacturing.example> (IT manager)",
            PROGRESS.url,
        ],
    ),
    "overdue_escalation": (
        digest("finance@example.com", "Fatima Okafor", ITEMS, 7),
        "Hello Fatima Okafor,",
        [
            "- INV-ACME-2026-014-01, Acme Logistics GmbH (deal ACME-2026-014): "
            "8 days overdue (due 2026-11-26), 12,345.60 EUR open",
            "- INV-ACME-2026-014-02, Acme Logistics GmbH (deal ACME-2026-014): "
            "1 day overdue (due 2026-12-03), 12,345.60 EUR open",
            f"- INV-XINGHE-2026-022-01, {XINGHE.customer.name} (deal XINGHE-2026-022): "
            "31 days overdue (due 2026-11-03), 12,345.60 CNY open; collections; "
            "the customer is now on collections hold",
        ],
    ),
    "payment_reminder": (
        customer_letter(
            invoice(f"INV-{ACME.deal_id}-01", ACME, paid="1000.00"),
            LEVELS["reminder"],
            escalation(f"INV-{ACME.deal_id}-01", ACME.customer.name, "reminder", 1, "EUR"),
            ACME.title,
            ACME.customer.billing_contact.name,
        ),
        "Dear Petra Schulz,",
        ["Received:       1,000.00 EUR", "Open balance:   12,345.60 EUR"],
    ),
    "rejection": (
        mail(
            "rejection",
            f"Deal rejected: {XINGHE.title} ({XINGHE.deal_id}) at Legal review",
            {
                "deal": XINGHE,
                "gate": {"title": "Legal review"},
                "rejection": approval("Lena Fischer", "The liability cap is missing."),
            },
        ),
        "Hello Liu Yang,",
        ["Reason: The liability cap is missing."],
    ),
    "reminder": (
        mail(
            "reminder",
            f"Reminder: {ACME.title} ({ACME.deal_id}) waits for your finance review",
            {
                "deal": ACME,
                "gate_title": "Finance review",
                "recipient_name": "Mara Jansen",
                "requested_at": WHEN,
                "overdue_by": "9 business hours",
                "link": "http://127.0.0.1:8000/approvals/t",
            },
        ),
        "Hello Mara Jansen,",
        ["Review it and approve or reject it here:"],
    ),
    "signing_request": (
        mail(
            "signing_request",
            f"Record the signed contract: {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "link": "http://127.0.0.1:8000/signing/t",
                "expires": WHEN,
                "due_now": ["Down payment"],
            },
        ),
        "Hello Liu Yang,",
        ["Once it is recorded, these invoices go to the customer: Down payment."],
    ),
    "stage_overdue": (
        mail(
            "stage_overdue",
            f"Reminder: Delivery plan of {XINGHE.title} ({XINGHE.deal_id})",
            {
                "deal": XINGHE,
                "stage_title": "Delivery plan",
                "limit": "5 business days",
                "since": WHEN,
                "elapsed": "6 business days",
                "to_manager": False,
            },
        ),
        "Hello Liu Yang,",
        [f'  dealflow deal report {XINGHE.deal_id} --note "..."'],
    ),
    "weekly_report": (
        mail("weekly_report", "Dealflow pipeline review, 2026-11-23 to 2026-11-29", weekly()),
        None,
        ["Stage | Deals", "approval | 3", "invoiced | 2"],
    ),
}


def test_every_email_template_is_covered() -> None:
    templates = {
        path.stem
        for path in (PROJECT_ROOT / "templates" / "email").glob("*.txt")
        if not path.stem.startswith("_")
    }
    assert templates == set(CASES)


@pytest.mark.parametrize("template", sorted(CASES))
def test_an_email_reads_as_written(template: str) -> None:
    outgoing, greeting, lines = CASES[template]
    message = sent(outgoing)
    assert message["Subject"] == outgoing.subject, "no leading space, UTF-8 decoded back"
    [sender] = message["From"].addresses
    assert sender == Address("Dealflow", addr_spec="dealflow@example.com")

    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    text_lines = text.splitlines()
    if greeting is not None:
        assert text_lines[0] == greeting
        assert f"<p>{greeting}</p>" in html
    for line in lines:
        assert line in text_lines, f"{line!r} is not a line of:\n{text}"
    for body in (text, html, outgoing.subject):
        assert "::" not in body
        assert not re.search(r"\b1 days\b", body), body
        assert "Dear customer" not in body
    for number, line in enumerate(text_lines):
        if line.startswith(("Deal:  ", "Invoice number: ")):  # a block of facts: its own paragraph
            assert text_lines[number - 1] == "", f"no blank line before {line!r}:\n{text}"
    for item in ITEMS if template in {"aging_report", "overdue_escalation"} else []:
        [own_line] = [line for line in text_lines if item.invoice in line]
        assert own_line.startswith("- ")


def _same_but_boundary_and_date(text: str) -> str:
    text = re.sub(r"=_dealflow_[0-9a-f]{32}", "BOUNDARY", text)
    return re.sub(r"(?m)^Date: .*$", "Date: -", text)


@pytest.mark.parametrize("template", sorted(CASES))
@pytest.mark.parametrize("cc", [[], ["finance@example.com", "Ruì Chén <rui@example.com>"]])
def test_the_text_sent_is_the_message_the_email_package_writes(
    template: str, cc: list[str]
) -> None:
    """``email_text`` writes the message itself, for speed: it must be what ``compose``
    and ``as_text`` give, header folding and encodings included."""
    settings = Settings(_env_file=None, mail_from="dealflow@example.com")
    outgoing = replace(CASES[template][0], cc=cc)
    for subject in (outgoing.subject, outgoing.subject + " 星河" * 30, "x" * 120):
        variant = replace(outgoing, subject=subject)
        written = _same_but_boundary_and_date(email_text(variant, settings))
        assert written == _same_but_boundary_and_date(as_text(compose(variant, settings)))
