"""Every answer of the web service carries a strict Content-Security-Policy (the pages run
no script and load nothing from elsewhere), HSTS when it is served over https, and the
API's schema and documentation pages are there only when a setting allows them."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.stack


def policy_for(page: str) -> str:
    """The policy the pages need, worked out from a page: its one <style> block by hash."""
    [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def test_every_answer_carries_a_strict_policy(stack: Any) -> None:
    web = stack.config.web_url
    home = httpx.get(f"{web}/")
    assert "<script" not in home.text
    policy = policy_for(home.text)
    answers = [
        home,
        httpx.get(f"{web}/healthz"),
        httpx.get(f"{web}/approvals/incomplete"),
        httpx.get(f"{web}/acceptance/not.valid"),
        httpx.get(f"{web}/deals/ANY?key=x"),
        httpx.get(f"{web}/finance"),  # 401 from the gate, before any page
        httpx.post(f"{web}/api/deals", json={}),
        httpx.post(
            f"{web}/approvals/x.y", content=b"x" * (65 * 1024), headers={"Content-Type": "a/b"}
        ),  # 413 from the gate
        httpx.get(f"{web}/no-such-page"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 403, 400, 401, 401, 413, 404]
    for answer in answers:
        headers = answer.headers
        assert headers["Content-Security-Policy"] == policy, answer.url
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in headers, "served over http"


def test_the_api_schema_and_its_pages_are_not_served_by_default(stack: Any) -> None:
    for path in ("/openapi.json", "/docs", "/api/docs", "/redoc", "/api/docs/oauth2-redirect"):
        assert httpx.get(f"{stack.config.web_url}{path}").status_code == 404, path


def test_https_gets_hsts_and_the_docs_come_only_when_allowed(stack: Any, web_service: Any) -> None:
    base = web_service(
        DEALFLOW_PUBLIC_BASE_URL="https://deals.example.com", DEALFLOW_API_DOCS="true"
    )
    home = httpx.get(f"{base}/")
    assert home.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert home.headers["Content-Security-Policy"] == policy_for(home.text)
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Dealflow"
    docs = httpx.get(f"{base}/api/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # The documentation page loads Swagger UI from its CDN: a policy of its own.
    docs_policy = docs.headers["Content-Security-Policy"]
    assert "https://cdn.jsdelivr.net" in docs_policy and "frame-ancestors 'none'" in docs_policy
    assert httpx.get(f"{base}/redoc").status_code == 200
