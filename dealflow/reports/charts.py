"""The weekly report's charts as PNG images, drawn without a display (Agg)."""

from __future__ import annotations

import base64
import io

from dealflow.infra.home_folder import keep_out_of_home
from dealflow.reports.measures import AGING_BUCKETS
from dealflow.reports.pipeline_figures import Figures
from dealflow.reports.tables import stage_title
from models.matrix import Matrix

# Before matplotlib is imported: it finds its configuration and font cache folder then,
# in the home folder unless MPLCONFIGDIR says otherwise. Here, and not only in the CLI:
# a worker's flow run imports this module without passing through Dealflow's CLI.
keep_out_of_home()

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

BLUE, GREY = "#2f6fb0", "#b8c4d0"


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


def funnel(matrix: Matrix, now: Figures, before: Figures) -> bytes:
    labels = [stage_title(matrix, stage) for stage, _ in now.funnel]
    figure = Figure(figsize=(7, 0.45 * len(labels) + 1.2))
    axes = figure.subplots()
    positions = range(len(labels))
    axes.barh(
        [p + 0.2 for p in positions],
        [n for _, n in now.funnel],
        0.4,
        color=BLUE,
        label="this period",
    )
    axes.barh(
        [p - 0.2 for p in positions],
        [n for _, n in before.funnel],
        0.4,
        color=GREY,
        label="previous",
    )
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlabel("deals entering the stage")
    axes.set_title("Stage funnel")
    axes.legend(loc="lower right")
    return _png(figure)


def cycle_times(matrix: Matrix, now: Figures) -> bytes:
    stages = [(stage_title(matrix, s), summary) for s, summary in now.cycle]
    figure = Figure(figsize=(7, 0.45 * max(len(stages), 1) + 1.2))
    axes = figure.subplots()
    positions = range(len(stages))
    axes.barh(list(positions), [s.p90 or 0 for _, s in stages], 0.6, color=GREY, label="p90")
    axes.barh(list(positions), [s.median or 0 for _, s in stages], 0.6, color=BLUE, label="median")
    axes.set_yticks(list(positions), [label for label, _ in stages])
    axes.invert_yaxis()
    axes.set_xlabel("days in the stage")
    axes.set_title("Cycle time per stage")
    axes.legend(loc="lower right")
    return _png(figure)


def aging(now: Figures) -> bytes:
    currencies = sorted({c for bucket in now.overdue.values() for c in bucket}) or ["-"]
    figure = Figure(figsize=(7, 3.2))
    axes = figure.subplots()
    width = 0.8 / len(currencies)
    for index, currency in enumerate(currencies):
        amounts = [
            float(now.overdue[b][currency].amount) if currency in now.overdue[b] else 0.0
            for b in AGING_BUCKETS
        ]
        offsets = [i - 0.4 + width * (index + 0.5) for i in range(len(AGING_BUCKETS))]
        axes.bar(offsets, amounts, width, label=currency)
    axes.set_xticks(range(len(AGING_BUCKETS)), AGING_BUCKETS)
    axes.set_ylabel("open balance")
    axes.set_title(f"Aging on {now.period.last}")
    axes.legend()
    return _png(figure)


def weekly_charts(matrix: Matrix, now: Figures, before: Figures) -> dict[str, bytes]:
    """Each chart by its content id: funnel, cycle-times, aging."""
    return {
        "funnel": funnel(matrix, now, before),
        "cycle-times": cycle_times(matrix, now),
        "aging": aging(now),
    }


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
