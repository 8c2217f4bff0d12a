"""No NUL character in what a request says: PostgreSQL stores none, and refuses a query
that only looks one up, so a NUL in an invoice number, a reason or a deal id was a server
error there (and stored as typed on SQLite). No name, number or reason needs one."""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile

NUL = "\x00"
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_nul_characters(request: Request) -> None:
    """400 for a request whose path, query or form fields (an upload's file name too)
    hold a NUL, before its route does anything. A deal's JSON is the intake model's to
    check; a bank statement's content, the statement parser's."""
    texts = [*request.path_params.values(), *request.query_params.values()]
    if request.headers.get("content-type", "").startswith(FORMS):
        # FastAPI parsed the form before the dependencies run: this reads its copy.
        for value in (await request.form()).values():
            texts.append((value.filename or "") if isinstance(value, UploadFile) else value)
    if any(NUL in str(text) for text in texts):
        raise HTTPException(
            400,
            "The request holds a NUL character (\\x00), which no field takes: nothing "
            "was done. Send it again without it.",
        )
