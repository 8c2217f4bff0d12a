"""The security headers of every answer of the web service.

The pages run no script and load nothing from elsewhere: their one stylesheet is the
``<style>`` block of templates/pages/_layout.html, allowed by its hash. So the policy
allows nothing else: no script, no frame, no plugin, no connection, forms that post only
to this service, no ``<base>``, and no other site may frame a page. The API
documentation (only with DEALFLOW_API_DOCS) loads Swagger UI and ReDoc from their CDN and
gets a policy of its own for those two pages.

Strict-Transport-Security is sent when DEALFLOW_PUBLIC_BASE_URL is https: browsers then
refuse plain HTTP to the host for a year.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dealflow.infra.rendering import render
from models.settings import get_settings

DOCS_PAGES = ("/api/docs", "/redoc")
HSTS = "max-age=31536000"
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


@lru_cache(maxsize=1)
def page_style_hash() -> str:
    """The CSP source of the pages' stylesheet: the hash of the layout's <style> block."""
    found = _STYLE.search(render("pages/message.html", title="", message=""))
    assert found, "templates/pages/_layout.html has no <style> block"
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def page_policy() -> str:
    return (
        f"default-src 'none'; style-src {page_style_hash()}; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


@lru_cache(maxsize=1)
def security_headers() -> dict[str, str]:
    headers = {
        # The token in a link's address is a credential: no Referer, no caching.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": page_policy(),
    }
    if get_settings().public_base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Adds the headers to every answer, the gate's own included (the outermost layer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(DOCS_PAGES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(security_headers())
                if docs:
                    headers["Content-Security-Policy"] = DOCS_POLICY
            await send(message)

        await self.app(scope, receive, send_with_headers)
