"""Waiting for a person's answer: suspend, believe only a proven answer, wait again if not.

A plain function, not a subflow: Prefect suspends top-level flow runs only.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from prefect import suspend_flow_run
from prefect.input.run_input import RunInput
from pydantic import BaseModel

from models.answers import RESUME_FORM_NOTE
from models.keys import attempt_keys
from tasks.answers import check_answer

A = TypeVar("A", bound=BaseModel)


@cache
def _resume_form(model: type[BaseModel]) -> Any:
    """The input Prefect waits for, with a note on its Resume form."""
    return RunInput.subclass_from_base_model_type(model).with_initial_data(
        description=RESUME_FORM_NOTE
    )


def answer_to(deal_id: str, run_id: str, model: type[A], step: str) -> A:
    """Suspend under ``step``'s key until an answer Dealflow can believe arrives; a
    refused one moves the wait to the step's next attempt key."""
    for key in attempt_keys(step):
        answer = suspend_flow_run(wait_for_input=_resume_form(model), key=key)
        believed = check_answer(deal_id, run_id, key, answer)
        if believed is not None:
            return believed
    raise AssertionError("attempt_keys never ends")
