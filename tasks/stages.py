"""Where a pass of a deal's run starts (is it still the deal's run?), and the stages before
the contract: open each for the sales rep, record what they report."""

from __future__ import annotations

import datetime as dt

from dealflow.infra.records import replaced_by, timeline
from models import keys
from models.deal import EARLY_STAGES
from models.stage_report import RunPlan, StagePlan, StageReport, grade_for
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task


@effect_task("plan-run")
def plan_run(deal_id: str, revision: int = 1, run_id: str | None = None) -> RunPlan:
    """Where a pass of the run of the deal's ``revision`` (the run ``run_id``) starts.

    A run whose revision a later one replaced (the deal was rejected, revised and
    submitted again) is told so and nothing else: the new revision's run carries the
    deal, and this one must not act on it, whatever started it again (the sla-sweep
    recovering a crash, an operator's retry, a resume). Otherwise: the stages before the
    contract the deal still goes through, from where it was submitted; each says whether
    it was opened and whether its report is in (and said the deal was lost)."""
    with deal_effect(deal_id) as effect:
        later = replaced_by(effect.session, effect.deal, revision, run_id)
        if later is not None:
            return RunPlan(replaced_by=later)
        titles = {stage.name: stage.title for stage in effect.matrix.stages}
        submitted_at = effect.intake.stage
        recorded = {t.key: t.stage for t in timeline(effect.session, deal_id)}
    if submitted_at not in EARLY_STAGES:
        return RunPlan()
    return RunPlan(
        early_stages=[
            StagePlan(
                name=stage.value,
                title=titles.get(stage.value, stage.value),
                done=keys.stage_reported(stage.value) in recorded,
                opened=keys.stage_opened(stage.value) in recorded,
                lost=recorded.get(keys.stage_reported(stage.value)) == "lost",
            )
            for stage in EARLY_STAGES[EARLY_STAGES.index(submitted_at) :]
        ]
    )


@effect_task("open-stage")
def open_stage(deal_id: str, stage: StagePlan) -> None:
    """Record that the deal waits on its sales rep at ``stage``, since now."""
    with deal_effect(deal_id) as effect:
        deal = effect.deal
        if effect.record(
            keys.stage_opened(stage.name),
            f"{stage.title}: waiting on {deal.sales_rep_name}",
            stage=stage.name,
        ):
            effect.wait_on(deal.sales_rep_email, deal.sales_rep_name, deal.updated_at)


def describe(report: StageReport, stage: StagePlan, late_by: str | None) -> str:
    if report.lost:
        return f"{stage.title}: deal lost"
    if report.score is not None:
        return f"{stage.title} done: score {report.score}, grade {grade_for(report.score)}"
    if report.visit_date is not None:
        timing = f", {late_by} after the visit: late" if late_by else ""
        return f"{stage.title} done: visit on {report.visit_date} recorded{timing}"
    return f"{stage.title} done"


@effect_task("record-stage-report")
def record_stage_report(deal_id: str, stage: StagePlan, report: StageReport) -> None:
    """Put the rep's report on the timeline; a lead's grade on the deal; a lost deal closed."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        late_by = None
        rule = next((s for s in matrix.stages if s.name == stage.name), None)
        if rule and rule.limit_from == "visit" and rule.limit_business_hours and report.visit_date:
            calendar = matrix.calendar(deal.team)
            visit_end = dt.datetime.combine(report.visit_date, calendar.day_end, calendar.zone)
            taken = calendar.working_time_between(visit_end, report.reported_at)
            if taken > dt.timedelta(hours=rule.limit_business_hours):
                late_by = f"{taken.total_seconds() / 3600:g} business hours"
        added = effect.record(
            keys.stage_reported(stage.name),
            describe(report, stage, late_by),
            stage="lost" if report.lost else stage.name,
            actor=report.reported_by,
            comment=report.note,
            at=report.reported_at,
        )
        if added:
            effect.waiting_on_nobody()
            if report.score is not None:
                deal.grade = grade_for(report.score)
            if report.lost:
                deal.outcome = "lost"
                deal.outcome_reason = report.note or f"lost at {stage.title.lower()}"
