"""Among a pool's online workers, exactly one answers the event of a run scheduled, and
the runs spread over the workers; a worker not yet seen online answers to be sure."""

from __future__ import annotations

import asyncio
import time
import uuid

from dealflow.warm.prompt import Team

WORKERS = ["dealflow-worker-1", "dealflow-worker-2", "dealflow-worker-3"]


def team_of(me: str, online: list[str]) -> Team:
    team = Team("dealflow", me)
    team.names, team.read_at = online, time.monotonic()
    return team


def takers(run: str, online: list[str]) -> list[str]:
    return [me for me in online if asyncio.run(team_of(me, online).takes(run))]


def test_one_worker_answers_each_run_and_each_worker_gets_some() -> None:
    runs = [f"prefect.flow-run.{uuid.uuid4()}" for _ in range(60)]
    chosen = [takers(run, WORKERS) for run in runs]
    assert all(len(names) == 1 for names in chosen)
    assert {names[0] for names in chosen} == set(WORKERS)


def test_a_worker_the_server_does_not_list_yet_answers_every_run() -> None:
    newcomer = team_of("dealflow-worker-9", WORKERS)
    assert asyncio.run(newcomer.takes(f"prefect.flow-run.{uuid.uuid4()}"))
