"""Answers to a waiting run: the proof an answer carries (the keys: tests/models/test_keys.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from prefect.input.run_input import RunInput
from pydantic import BaseModel

from dealflow.infra.answer_proof import is_proven, proven_payload
from models.decision import GateDecision
from models.finance import DeliveryAcceptance, PaymentsSettled
from models.stage_report import StageReport

KEY = b"k" * 32
RUN = "6a1f0f5e-1c1d-4c35-9a44-3f1f7f2a8b10"


def received(model: type[BaseModel], payload: dict[str, object]) -> BaseModel:
    """The answer as the flow gets it: through JSON, into Prefect's input class."""
    run_input = RunInput.subclass_from_base_model_type(model)
    return run_input(**json.loads(json.dumps(payload)))


ANSWERS: list[BaseModel] = [
    GateDecision(
        approved=True,
        decided_by="mara.keller@example.com",
        decided_by_name="Mara Keller",
        comment="ok, 好的",
        decided_at=dt.datetime(2026, 12, 2, 9, 30, 12, 123456, tzinfo=dt.UTC),
    ),
    DeliveryAcceptance(accepted_by="omar@example.com", accepted_on=dt.date(2026, 12, 1)),
    PaymentsSettled(settled_at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC), last_payment="P-1"),
    StageReport(
        stage="lead_screening",
        reported_by="sam@example.com",
        reported_at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
        score=85,
    ),
]


WHO = {
    GateDecision: "decided_by",
    DeliveryAcceptance: "accepted_by",
    PaymentsSettled: "last_payment",
    StageReport: "reported_by",
}


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: type(a).__name__)
def test_a_proven_answer_survives_the_trip_and_a_changed_one_does_not(answer: BaseModel) -> None:
    model = type(answer)
    payload = proven_payload(RUN, "gate-manager", answer, KEY)
    assert is_proven(RUN, "gate-manager", received(model, payload), KEY)
    # Another run, another wait, another key, or any field changed: no proof.
    assert not is_proven("other-run", "gate-manager", received(model, payload), KEY)
    assert not is_proven(RUN, "gate-director", received(model, payload), KEY)
    assert not is_proven(RUN, "gate-manager", received(model, payload), b"x" * 32)
    changed = {**payload, WHO[model]: "someone.else@example.com"}
    assert not is_proven(RUN, "gate-manager", received(model, changed), KEY)
    unproven = {k: v for k, v in payload.items() if k != "proof"}
    assert not is_proven(RUN, "gate-manager", received(model, unproven), KEY)


def test_a_decision_forged_with_a_backdated_time_is_not_proven() -> None:
    genuine = proven_payload(RUN, "gate-manager", ANSWERS[0], KEY)
    backdated = {**genuine, "decided_at": "2020-01-01T00:00:00Z"}
    assert not is_proven(RUN, "gate-manager", received(GateDecision, backdated), KEY)


def test_a_run_suspended_by_an_earlier_release_gets_only_the_fields_its_schema_has() -> None:
    # Prefect refuses fields the stored schema lacks: a run waiting for acceptance since
    # before the acceptance report existed gets the answer without it, still proven.
    accepted = DeliveryAcceptance(
        accepted_by="omar.haddad@example.com",
        accepted_on=dt.date(2026, 3, 2),
        note="signed protocol",
        report="AR-9",
        proof="",
    )
    earlier = {"accepted_by", "accepted_by_name", "accepted_on", "note", "proof"}
    payload = proven_payload(RUN, "acceptance", accepted, KEY, earlier)
    assert set(payload) == {"accepted_by", "accepted_on", "note", "proof"}
    assert is_proven(RUN, "acceptance", received(DeliveryAcceptance, payload), KEY)
    # Before answers carried proofs: no proof, and the flow believes the database only.
    older = proven_payload(RUN, "acceptance", accepted, KEY, earlier - {"proof"})
    assert "proof" not in older and "report" not in older
