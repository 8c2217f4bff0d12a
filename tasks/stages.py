"""The stages before the contract: open each for the sales rep, record what they report."""

from __future__ import annotations

import datetime as dt

from dealflow.infra.records import timeline
from models import keys
from models.deal import EARLY_STAGES
from models.stage_report import StagePlan, StageReport, grade_for
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task


@effect_task("plan-early-stages")
def plan_early_stages(deal_id: str) -> list[StagePlan]:
    """The stages before the contract this deal still goes through, from where it was
    submitted; each says whether it was opened and whether its report is in (and said
    the deal was lost)."""
    with deal_effect(deal_id) as effect:
        titles = {stage.name: stage.title for stage in effect.matrix.stages}
        submitted_at = effect.intake.stage
        recorded = {t.key: t.stage for t in timeline(effect.session, deal_id)}
    if submitted_at not in EARLY_STAGES:
        return []
    return [
        StagePlan(
            name=stage.value,
            title=titles.get(stage.value, stage.value),
            done=keys.stage_reported(stage.value) in recorded,
            opened=keys.stage_opened(stage.value) in recorded,
            lost=recorded.get(keys.stage_reported(stage.value)) == "lost",
        )
        for stage in EARLY_STAGES[EARLY_STAGES.index(submitted_at) :]
    ]


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
