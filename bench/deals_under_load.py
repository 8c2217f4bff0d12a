"""Ours under load: deals submitted over HTTP, approved and signed at the links of their
emails.

Every deal is submitted with ``POST /api/deals``; this process's SMTP server hands each
approval request, and the sales rep's request to record the signed contract, to
``DealsUnderLoad.on_email`` as it arrives, which queues the answer (the POST of the
page's form at the emailed link) before any submission still waiting. A deal is done
when the email that follows its signing arrives (the delivery kickoff, or the acceptance
request).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from bench.client_pool import URGENT, Clients, retry_on_503
from bench.deal_copies import email_kind
from bench.process_trees import MemoryPeaks
from bench.timed_inbox import Received
from bench.under_load import PhaseResult, UnderLoad, spans
from harness.mail import LINK, SIGNING_LINK, link_in

SUBJECT_DEAL = re.compile(r"\(([A-Za-z0-9][A-Za-z0-9-]{1,62}[A-Za-z0-9])\)")


@dataclass
class ApprovalSample:
    """One approval (or the signing after them): its request email, the POST at its link,
    and the next email."""

    gate_email_at: float  # monotonic, the request's arrival at our SMTP server
    link: str
    post_start: float | None = None
    post_end: float | None = None
    status: int | None = None
    attempts: int = 0
    next_email_at: float | None = None
    # "approval request", "signing request", "kickoff" or "acceptance request"
    next_email: str | None = None
    signing: bool = False  # the sales rep's signed contract, not a gate's approval


@dataclass
class DealTrack:
    deal_id: str
    submit_start: float | None = None
    submit_end: float | None = None
    flow_run_id: str | None = None
    first_email_at: float | None = None
    approvals: list[ApprovalSample] = field(default_factory=list)
    done_at: float | None = None
    error: str | None = None


class DealsUnderLoad(UnderLoad):
    """Submits the deals and approves each gate as its request arrives (ours)."""

    unit = "deals"

    def __init__(self, deals: Sequence[dict[str, Any]], web_url: str, api_key: str) -> None:
        super().__init__()
        self.deals = list(deals)
        self.web_url = web_url
        self.api_key = api_key
        self.tracks = {d["deal_id"]: DealTrack(d["deal_id"]) for d in self.deals}

    # --- the SMTP side: called in the SMTP server's thread for every message
    def on_email(self, received: Received) -> None:
        subject = str(received.message["Subject"])
        kind = email_kind(subject)
        if kind is None:
            return
        deal_id = next((m for m in SUBJECT_DEAL.findall(subject) if m in self.tracks), None)
        if deal_id is None:
            return
        with self.changed:
            track = self.tracks[deal_id]
            if track.first_email_at is None:
                track.first_email_at = received.monotonic
            last = track.approvals[-1] if track.approvals else None
            if last is not None and last.post_start is not None and last.next_email_at is None:
                last.next_email_at, last.next_email = received.monotonic, kind
            if kind in ("approval request", "signing request"):
                signing = kind == "signing request"
                link = self._link(received.message, SIGNING_LINK if signing else LINK)
                if link is None or any(a.link == link for a in track.approvals):
                    return
                approval = ApprovalSample(
                    gate_email_at=received.monotonic, link=link, signing=signing
                )
                track.approvals.append(approval)
                assert self.pool is not None
                self.pool.submit(URGENT, lambda clients: self._approve(clients, track, approval))
            elif track.done_at is None:
                track.done_at = received.monotonic
            self.moved()

    def _link(self, message: EmailMessage, pattern: re.Pattern[str]) -> str | None:
        try:
            return link_in(message, pattern)
        except AssertionError:
            return None

    # --- the client side: jobs of the client pool
    def _submit(self, clients: Clients, deal: dict[str, Any]) -> None:
        import httpx

        track = self.tracks[deal["deal_id"]]
        track.submit_start = time.monotonic()
        try:
            response = retry_on_503(
                lambda: clients.http.post(
                    f"{self.web_url}/api/deals", json=deal, headers={"X-API-Key": self.api_key}
                )
            )
        except httpx.HTTPError as exc:
            self.fail(track, f"submission failed: {type(exc).__name__}: {exc}")
            return
        track.submit_end = time.monotonic()
        if response.status_code == 201:
            track.flow_run_id = response.json()["flow_run_id"]
        else:
            self.fail(track, f"submission answered {response.status_code}: {response.text[:300]}")

    def _approve(self, clients: Clients, track: DealTrack, approval: ApprovalSample) -> None:
        import httpx

        if approval.signing:
            data = {"signed_by": "Load Buyer", "document": f"{track.deal_id}-signed.pdf"}
            said = "Signed contract recorded"
        else:
            data = {"decision": "approve", "comment": "load benchmark"}
            said = "You approved this deal"

        def post() -> httpx.Response:
            approval.attempts += 1
            return clients.http.post(approval.link, data=data)

        approval.post_start = time.monotonic()
        try:
            response = retry_on_503(post)
        except httpx.HTTPError as exc:
            self.fail(track, f"approval failed: {type(exc).__name__}: {exc}")
            return
        approval.post_end, approval.status = time.monotonic(), response.status_code
        if response.status_code != 200 or said not in response.text:
            self.fail(track, f"approval answered {response.status_code}")

    # --- the run
    def finished(self) -> int:
        return sum(1 for t in self.tracks.values() if t.done_at is not None or t.error)

    def run(self, concurrency: int, timeout: float, stall: float) -> tuple[float, float]:
        """Submit every deal and wait until each is done or failed; (start, end) monotonic."""
        submissions = [functools.partial(self._submit, deal=deal) for deal in self.deals]
        start, _start_wall = self.drive(submissions, concurrency, timeout, stall)
        ends = [t.done_at for t in self.tracks.values() if t.done_at is not None]
        return start, max(ends, default=time.monotonic())

    def result(
        self, window: tuple[float, float], memory: MemoryPeaks, other: dict[str, int]
    ) -> PhaseResult:
        tracks = list(self.tracks.values())
        approvals = [a for t in tracks for a in t.approvals]
        return PhaseResult(
            name="ours",
            count=len(tracks),
            done=sum(1 for t in tracks if t.done_at is not None),
            failures=[f"{t.deal_id}: {t.error}" for t in tracks if t.error],
            wall=window[1] - window[0],
            latencies=spans((a.post_start, a.next_email_at) for a in approvals),
            to_first_gate=spans((t.submit_start, t.first_email_at) for t in tracks),
            call_seconds=spans((a.post_start, a.post_end) for a in approvals),
            after_call=spans((a.post_end, a.next_email_at) for a in approvals),
            memory=memory,
            other_runs=other,
        )
