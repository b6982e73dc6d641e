"""DynamicBatcher: merging, order of results, limits, draining on stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from rmforge.serve.batcher import DynamicBatcher, QueueFull


def _recorder(delay=0.0):
    steps = []

    def run(payloads):
        steps.append(list(payloads))
        time.sleep(delay)
        return [p * 10 if p >= 0 else ValueError(f"bad {p}") for p in payloads]

    return run, steps


async def _burst(batcher, payloads, rows=1):
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(p, rows, 5) for p in payloads), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_jobs_are_merged_and_routed():
    run, steps = _recorder()
    out = asyncio.run(_burst(DynamicBatcher(run, max_batch_rows=4, max_wait_s=0.2), list(range(10))))
    assert out == [p * 10 for p in range(10)]
    assert [len(s) for s in steps] == [4, 4, 2]  # arrival order, at most max_batch_rows rows per step
    assert [p for s in steps for p in s] == list(range(10))


def test_no_dynamic_batching_runs_one_job_per_step():
    run, steps = _recorder()
    out = asyncio.run(_burst(DynamicBatcher(run, dynamic=False), [1, 2, 3]))
    assert out == [10, 20, 30] and steps == [[1], [2], [3]]


def test_per_job_errors_and_backend_failure():
    run, _ = _recorder()
    out = asyncio.run(_burst(DynamicBatcher(run, max_wait_s=0.05), [1, -2, 3]))
    assert out[0] == 10 and out[2] == 30 and isinstance(out[1], ValueError)

    def broken(payloads):
        raise RuntimeError("model exploded")

    out = asyncio.run(_burst(DynamicBatcher(broken), [1, 2]))
    assert all(isinstance(o, RuntimeError) for o in out)


def test_bounded_queue_and_timeout():
    async def main():
        run, steps = _recorder(delay=0.3)
        b = DynamicBatcher(run, max_batch_rows=1, max_wait_s=0, max_queue_rows=2)
        await b.start()
        first = asyncio.create_task(b.submit(1, 1, 5))
        await asyncio.sleep(0.05)  # the first job is running, the queue is empty
        queued = [asyncio.create_task(b.submit(p, 1, 5)) for p in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await b.submit(4, 1, 5)
        with pytest.raises(TimeoutError):
            await b.submit(5, 0, 0.01)  # waits behind the others; skipped once timed out
        await b.stop()  # drains: every queued job still gets its answer
        assert [await t for t in (first, *queued)] == [10, 20, 30]
        assert [p for s in steps for p in s] == [1, 2, 3]
        with pytest.raises(QueueFull):
            await b.submit(6, 1, 5)  # stopped

    asyncio.run(main())


def test_a_job_that_breaks_the_step_fails_alone():
    """A merged step that raises is rerun job by job: the breaking job fails, its batch-mates are answered."""
    steps = []

    def run(payloads):
        steps.append(list(payloads))
        if 13 in payloads:
            raise RuntimeError("reward is NaN")
        return [p * 10 for p in payloads]

    out = asyncio.run(_burst(DynamicBatcher(run, max_batch_rows=8, max_wait_s=0.2), [1, 13, 3]))
    assert out[0] == 10 and out[2] == 30 and isinstance(out[1], RuntimeError)
    assert steps == [[1, 13, 3], [1], [13], [3]]


def test_timeout_finds_its_job_by_identity_without_comparing_payloads():
    """A timed-out job is looked up in the queue by identity: the queued requests' payloads (whole
    conversations) are never compared (a dataclass __eq__ compared them deeply, job by job)."""
    compared = []

    class Payload:
        def __eq__(self, other):
            compared.append(1)
            return NotImplemented

        __hash__ = object.__hash__

    async def main():
        gate = asyncio.Event()
        b = DynamicBatcher(lambda ps: [1] * len(ps), max_batch_rows=1, max_wait_s=0)
        b._worker = gate.wait  # no worker: every job stays queued
        await b.start()
        queued = [asyncio.create_task(b.submit(Payload(), 1, 5)) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await b.submit(Payload(), 1, 0.01)
        assert [j.cancelled for j in b._queue] == [False, False, False, True]
        for t in queued:
            t.cancel()
        gate.set()

    asyncio.run(main())
    assert compared == []
