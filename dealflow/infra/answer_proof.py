"""The proof an answer to a waiting run carries: that Dealflow's own checks passed it.

An HMAC over the run's id, the key it waits under and the answer's fields (all but the
proof itself), with a key derived from the signing secret for this one purpose, so that
a link's signature can never stand in for an answer's. The flow recomputes it from the
answer it was resumed with: the fields as sent, nothing added by a newer model version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel

PROOF = "proof"
_PURPOSE = b"dealflow/answer-proof/v1"


def _key(signing_key: bytes) -> bytes:
    return hmac.new(signing_key, _PURPOSE, hashlib.sha256).digest()


def _fields(answer: BaseModel) -> dict[str, Any]:
    # exclude_unset: on the flow's side, exactly the fields the sender sent.
    return answer.model_dump(mode="json", exclude_unset=True, exclude={PROOF})


def _digest(run_id: str, key: str, fields: dict[str, Any], signing_key: bytes) -> str:
    message = json.dumps(
        {"run": run_id, "key": key, "answer": fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(_key(signing_key), message.encode(), hashlib.sha256).hexdigest()


def proven_payload(
    run_id: str,
    key: str,
    answer: BaseModel,
    signing_key: bytes,
    known: Collection[str] | None = None,
) -> dict[str, Any]:
    """What to resume the run with: the answer's fields and their proof.

    ``known``: the fields of the input schema the run stored when it suspended, if an
    earlier release suspended it. Prefect refuses fields that schema does not have, so
    only the known ones are sent and proven (Dealflow's database records the others),
    and no proof at all to a run suspended before answers carried one."""
    fields = {
        name: value for name, value in _fields(answer).items() if known is None or name in known
    }
    payload = {**fields, PROOF: _digest(run_id, key, fields, signing_key)}
    if known is not None and PROOF not in known:
        del payload[PROOF]
    return payload


def is_proven(run_id: str, key: str, answer: BaseModel, signing_key: bytes) -> bool:
    """Whether ``answer``, received by run ``run_id`` under ``key``, carries a valid proof."""
    given = getattr(answer, PROOF, "") or ""
    expected = _digest(run_id, key, _fields(answer), signing_key)
    return hmac.compare_digest(given.encode(), expected.encode())
