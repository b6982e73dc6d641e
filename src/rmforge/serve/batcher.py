"""Dynamic batching: concurrent requests merged into one backend step, with a bounded queue.

Requests (*jobs*, each counting its responses as *rows*) wait in a FIFO queue. One worker task takes
the oldest job, waits up to ``max_wait_s`` for more rows, takes jobs in arrival order up to
``max_batch_rows`` (a bigger job goes alone) and runs the backend in a single worker thread, so
forwards never compete for the CPU/GPU; while a step runs, new jobs queue up and form the next step.
``submit`` raises :class:`QueueFull` when the waiting rows would pass ``max_queue_rows`` (the server
answers 503) and :class:`TimeoutError` past the per-request timeout (504; a job still waiting is
skipped). A step that raises is rerun job by job, so only the job that breaks the backend fails.
``stop`` finishes every queued job before it returns (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable


class QueueFull(Exception):
    """The queue holds too many rows; retry later."""


@dataclass(eq=False)  # identity: ``job in queue`` must not compare payloads (requests' conversations)
class _Job:
    payload: Any
    rows: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)
    cancelled: bool = False


class DynamicBatcher:
    """Merge concurrent jobs into backend steps; ``run(payloads) -> results`` (one per payload,
    an Exception instance for a failed one) is called in one worker thread."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], *, max_batch_rows: int = 64,
                 max_wait_s: float = 0.005, max_queue_rows: int = 4096, dynamic: bool = True,
                 on_step: Callable[[int, int], None] | None = None):
        self._run, self.max_batch_rows, self.max_wait_s = run, max_batch_rows, max_wait_s
        self.max_queue_rows, self.dynamic, self._on_step = max_queue_rows, dynamic, on_step
        self._queue: collections.deque[_Job] = collections.deque()
        self.queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._stopping = False  # restartable (an app's lifespan may run more than once)
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmforge-score")
        self._task = asyncio.create_task(self._worker())

    async def stop(self) -> None:
        """Finish the queued jobs, then stop the worker."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, payload: Any, rows: int, timeout: float | None = None) -> Any:
        """Queue a job and wait for its result (raises the job's exception)."""
        if self._task is None or self._stopping:
            raise QueueFull("the server is shutting down")
        if self.queued_rows + rows > self.max_queue_rows and self.queued_rows > 0:
            raise QueueFull(f"queue full ({self.queued_rows} responses waiting, limit {self.max_queue_rows})")
        job = _Job(payload, rows, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self.queued_rows += rows
        self._wake.set()
        try:
            result = await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except asyncio.TimeoutError:
            if not job.future.done() and job in self._queue:  # still waiting: never run it
                job.cancelled = True
            raise TimeoutError(f"not scored within {timeout:g} s") from None
        if isinstance(result, Exception):
            raise result
        return result

    def _take(self) -> list[_Job]:
        batch, rows = [], 0
        while self._queue:
            job = self._queue[0]
            if job.cancelled:
                self._queue.popleft()
                self.queued_rows -= job.rows
                continue
            if batch and (not self.dynamic or rows + job.rows > self.max_batch_rows):
                break
            batch.append(self._queue.popleft())
            self.queued_rows -= job.rows
            rows += job.rows
        return batch

    async def _step(self, loop, payloads: list[Any]) -> list[Any]:
        """One backend step; if it raises with several jobs merged, each job is rerun alone, so a job
        that breaks the backend fails by itself and its batch-mates are still answered."""
        try:
            return await loop.run_in_executor(self._executor, self._run, payloads)
        except Exception as exc:
            if len(payloads) == 1:
                return [exc]
        out = []
        for payload in payloads:
            try:
                out.extend(await loop.run_in_executor(self._executor, self._run, [payload]))
            except Exception as exc:
                out.append(exc)
        return out

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.dynamic and not self._stopping:  # wait a little for more rows
                deadline = self._queue[0].arrived + self.max_wait_s
                while self.queued_rows < self.max_batch_rows and (left := deadline - time.monotonic()) > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), left)
                    except asyncio.TimeoutError:
                        break
            batch = self._take()
            if not batch:
                continue
            results = await self._step(loop, [j.payload for j in batch])
            if self._on_step is not None:
                self._on_step(len(batch), sum(j.rows for j in batch))
            for job, res in zip(batch, results):
                if not job.future.done():
                    job.future.set_result(res)
