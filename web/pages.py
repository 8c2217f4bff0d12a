"""The web service's one message page: a title and a sentence, in the pages' style."""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from dealflow.infra.rendering import render


def message_page(title: str, message: str, status: int = 200, **extra: object) -> HTMLResponse:
    return HTMLResponse(render("pages/message.html", title=title, message=message, **extra), status)
