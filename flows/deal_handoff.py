"""The deal-handoff flow: one run carries one won deal from approvals to payment."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from dealflow.infra.clock import utcnow
from flows.answers import answer_to
from flows.outcomes import ended, superseded
from flows.run_names import deal_run_name
from models.decision import GateDecision
from models.finance import DeliveryAcceptance, PaymentsSettled
from models.keys import ACCEPTANCE_WAIT, PAYMENT_WAIT, SIGNING_WAIT, gate_wait, stage_wait
from models.signing import ContractSigned
from models.stage_report import StageReport
from tasks.approvals import announce_rejection, plan_approvals, record_decision, request_approval
from tasks.artifacts import publish_deal_board
from tasks.closing import await_payment, close_deal, request_acceptance
from tasks.handoff import INVOICED_AT_ACCEPTANCE, issue_invoices, kick_off_delivery, plan_handoff
from tasks.satisfaction import hand_to_customer_success
from tasks.signing import request_archiving, request_signing
from tasks.stages import open_stage, plan_run, record_stage_report


@flow(name="deal-handoff", flow_run_name=deal_run_name, persist_result=False)
def deal_handoff(deal_id: str, revision: int = 1) -> State:
    """Take a submitted deal through its approval gates, delivery kickoff and invoicing,
    the customer's acceptance, and payment in full.

    Waits: a deal submitted before it was won first waits at each remaining stage
    before the contract (lead screening, needs discovery, quote; key ``stage-<name>``)
    for its sales rep's report (``dealflow deal report``). Then, at each gate of the
    deal's approval route (manager -> director -> legal by default, from the
    responsibility matrix), the run is suspended under the key ``gate-<name>`` until
    the approver's decision resumes it. After the last approval it waits (key
    ``signing``) for the sales rep to record the contract signed by the customer (link
    or ``dealflow deal sign``); administration is then told to archive it (a duty the
    sla-sweep follows up, not a wait). After kickoff and the first invoices it waits
    (key ``acceptance``) for the delivery manager to record the customer's acceptance (link
    or ``dealflow deal accept``), which hands the deal to customer success (the
    matrix's ``success_role``; the customer's satisfaction survey and any complaint are
    duties beside the run, not waits) and releases the invoices due on acceptance; then
    (key ``payment``) until every invoice is paid: recording the last payment, or the
    payment-check flow, resumes it. No process is held while it waits.

    Ends: Completed "Paid"; or Cancelled "Rejected" (at a gate) or "Lost" (at an early
    stage), so that a deal that cannot go on does not look like a success; or Cancelled
    "Superseded", having done nothing, when a revision submitted since replaced the
    run's own (see below).

    An answer counts only with Dealflow's proof (the page, the CLI or finance sent it
    after their checks): one typed into Prefect's Resume form is refused, noted on the
    timeline, and the run waits again for the same step (key ``<key>-attempt-2``, ...).

    A rejected deal revised and submitted again (``dealflow deal resubmit``) gets a run
    of its own for the new ``revision`` (named ``deal-<id>-r2``): the stages reported
    before are not asked again, its route is planned again and every gate asked again,
    under keys of that revision. The run reads the
    deal's current revision from Dealflow's database; ``revision`` names the run, tells
    its runs apart in Prefect, and says which revision the run carries: a run whose
    revision was replaced (started again by the sla-sweep after a crash, a retry in the
    Prefect UI) ends at once without touching the deal, and its gates act for their own
    revision only. Submitting the revision also cancels the replaced run in Prefect
    when it can; this check holds when Prefect could not be reached then.

    After each resume Prefect runs this function again from the top: every step below
    is idempotent by its own key in Dealflow's database, and a step an earlier pass
    finished is not called again (each phase's plan says which), so the run shows
    one task run per step done, not one per step per pass. A gate the database records
    as decided, a stage whose report is in, a signed contract and an acceptance already
    recorded are not waited for again.

    Touches: Dealflow's database (stage, timeline, approvals, invoices, outbox), SMTP
    (approval requests, rejection notice, signing request, archiving request, kickoff,
    invoices, acceptance request, customer success's hand-over and the customer's
    satisfaction survey, the rep's "paid in full"), and the run's keyed markdown
    artifact ``deal-<id>``.
    """
    run_id = str(flow_run.id)
    run = plan_run(deal_id, revision, run_id)
    if run.replaced_by is not None:
        # A revision submitted since replaced this run's, and its own run carries the
        # deal: this one, started again (a crash recovered, a retry), touches nothing.
        return superseded(deal_id, revision, run.replaced_by)
    for stage in run.early_stages:
        if stage.done:
            if stage.lost:  # reported lost on a pass that ended before the run did
                return ended("lost", deal_id)
            continue
        if not stage.opened:
            open_stage(deal_id, stage)
            publish_deal_board(deal_id)
        report = answer_to(deal_id, run_id, StageReport, stage_wait(stage.name))
        record_stage_report(deal_id, stage, report)
        if report.lost:
            publish_deal_board(deal_id)
            return ended("lost", deal_id)
    for gate in plan_approvals(deal_id, revision):
        decision = gate.decision
        if decision is None:
            request_approval(deal_id, gate, run_id)
            publish_deal_board(deal_id)
            decision = answer_to(deal_id, run_id, GateDecision, gate_wait(gate.name))
        if not gate.recorded:
            record_decision(deal_id, gate, decision)
        if not decision.approved:
            announce_rejection(deal_id, gate)
            publish_deal_board(deal_id)
            return ended("rejected", deal_id)
    done = plan_handoff(deal_id)
    if not done.signed:
        request_signing(deal_id, run_id)
        publish_deal_board(deal_id)
        # The link or the CLI records the signed contract before it resumes the run.
        answer_to(deal_id, run_id, ContractSigned, SIGNING_WAIT)
    if not done.handed_over:
        request_archiving(deal_id)  # a duty beside the run: nothing waits for it
        kick_off_delivery(deal_id)
        issue_invoices(deal_id)
    if not done.accepted:
        request_acceptance(deal_id, run_id)
        publish_deal_board(deal_id)
        # The link or the CLI records the acceptance before it resumes the run.
        answer_to(deal_id, run_id, DeliveryAcceptance, ACCEPTANCE_WAIT)
    if not done.handed_to_success:
        hand_to_customer_success(deal_id)  # the survey and complaints: beside the run
    if not done.invoiced_at_acceptance:
        issue_invoices(deal_id, INVOICED_AT_ACCEPTANCE)
    if not await_payment(deal_id):
        publish_deal_board(deal_id)
        settled = answer_to(deal_id, run_id, PaymentsSettled, PAYMENT_WAIT)
    else:
        settled = PaymentsSettled(settled_at=utcnow())  # paid before it had to wait
    close_deal(deal_id, settled)
    publish_deal_board(deal_id)
    return ended("paid", deal_id)
