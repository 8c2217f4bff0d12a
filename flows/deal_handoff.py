"""The deal-handoff flow: one run carries one won deal from approvals to payment."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from dealflow.infra.clock import utcnow
from flows.answers import answer_to
from models.decision import GateDecision
from models.finance import DeliveryAcceptance, PaymentsSettled
from models.keys import ACCEPTANCE_WAIT, PAYMENT_WAIT, gate_wait, stage_wait
from models.stage_report import StageReport
from tasks.approvals import announce_rejection, plan_approvals, record_decision, request_approval
from tasks.artifacts import publish_deal_board
from tasks.closing import await_payment, close_deal, request_acceptance
from tasks.handoff import INVOICED_AT_ACCEPTANCE, issue_invoices, kick_off_delivery
from tasks.stages import open_stage, plan_early_stages, record_stage_report


@flow(name="deal-handoff", flow_run_name="deal-{deal_id}", persist_result=False)
def deal_handoff(deal_id: str) -> str:
    """Take a submitted deal through its approval gates, delivery kickoff and invoicing,
    the customer's acceptance, and payment in full.

    Waits: a deal submitted before it was won first waits at each remaining stage
    before the contract (lead screening, needs discovery, quote; key ``stage-<name>``)
    for its sales rep's report (``dealflow deal report``). Then, at each gate of the
    deal's approval route (manager -> director -> legal by default, from the
    responsibility matrix), the run is suspended under the key ``gate-<name>`` until
    the approver's decision resumes it. After kickoff and the first invoices it waits
    (key ``acceptance``) for the delivery manager to record the customer's acceptance (link
    or ``dealflow deal accept``), which releases the invoices due on acceptance; then
    (key ``payment``) until every invoice is paid: recording the last payment, or the
    payment-check flow, resumes it. No process is held while it waits.

    An answer counts only with Dealflow's proof (the page, the CLI or finance sent it
    after their checks): one typed into Prefect's Resume form is refused, noted on the
    timeline, and the run waits again for the same step (key ``<key>-attempt-2``, ...).

    After each resume Prefect runs this function again from the top: every step below
    is idempotent by its own key in Dealflow's database, and a gate the database records
    as decided is not waited for again.

    Touches: Dealflow's database (stage, timeline, approvals, invoices, outbox), SMTP
    (approval requests, rejection notice, kickoff, invoices, acceptance request, the
    rep's "paid in full"), and the run's keyed markdown artifact ``deal-<id>``.
    """
    run_id = str(flow_run.id)
    for stage in plan_early_stages(deal_id):
        if not stage.done:
            open_stage(deal_id, stage)
            publish_deal_board(deal_id)
        report = answer_to(deal_id, run_id, StageReport, stage_wait(stage.name))
        record_stage_report(deal_id, stage, report)
        if report.lost:
            publish_deal_board(deal_id)
            return "lost"
    for gate in plan_approvals(deal_id):
        decision = gate.decision
        if decision is None:
            request_approval(deal_id, gate, run_id)
            publish_deal_board(deal_id)
            decision = answer_to(deal_id, run_id, GateDecision, gate_wait(gate.name))
        record_decision(deal_id, gate, decision)
        if not decision.approved:
            announce_rejection(deal_id, gate)
            publish_deal_board(deal_id)
            return "rejected"
    kick_off_delivery(deal_id)
    issue_invoices(deal_id)
    request_acceptance(deal_id, run_id)
    publish_deal_board(deal_id)
    # The link or the CLI recorded the acceptance before it resumed the run.
    answer_to(deal_id, run_id, DeliveryAcceptance, ACCEPTANCE_WAIT)
    issue_invoices(deal_id, INVOICED_AT_ACCEPTANCE)
    if not await_payment(deal_id):
        publish_deal_board(deal_id)
        settled = answer_to(deal_id, run_id, PaymentsSettled, PAYMENT_WAIT)
    else:
        settled = PaymentsSettled(settled_at=utcnow())  # paid before it had to wait
    close_deal(deal_id, settled)
    publish_deal_board(deal_id)
    return "paid"
