"""The co-occurrence flush's pacing: a job held to a share of the event loop."""

from __future__ import annotations

import asyncio
from unittest import mock

from streams.cooccurrence_agent import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_job_pauses_backoff_times_each_step_of_its_work() -> None:
    clock, slept = Clock(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds  # the pause takes its time on the same clock

    async def job() -> None:
        pacer = Pacer(backoff=3.0, step_s=0.01, clock=clock)
        clock.now += 0.004
        assert not pacer.due()  # less than a step of work
        clock.now += 0.008
        assert pacer.due()
        await pacer.pause()  # 0.012 s worked: 0.036 s paused
        assert not pacer.due()  # the pause is not counted as work
        for _ in range(10):
            clock.now += 0.02
            assert pacer.due()
            await pacer.pause()

    with mock.patch.object(asyncio, "sleep", sleep):
        asyncio.run(job())
    assert abs(slept[0] - 0.036) < 1e-9
    assert len(slept) == 11 and all(abs(s - 0.06) < 1e-9 for s in slept[1:])
    worked = 0.012 + 10 * 0.02
    assert abs(worked / (clock.now - 100.0) - 0.25) < 1e-9  # 1 / (1 + backoff) of the time
