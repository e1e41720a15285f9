"""A bounded inference queue: `workers` jobs run at once in threads, `queue_size` more may wait.

ONNX Runtime and OpenVINO release the GIL while they compute, so threads give real parallelism and
the event loop stays free to read bodies and answer health checks. Admission is counted here, not
in an unbounded executor queue: job number workers + queue_size + 1 is refused at once (503 with a
Retry-After estimated from recent run times) instead of queueing behind work it would time out on.

Deadlines and disconnects: a job still waiting when its deadline passes (or its client leaves)
leaves the queue without running. A job already running cannot be stopped inside a native
convolution, so it is told to stop (`check()` raises between its stages: decode, stylize, encode)
and its worker slot is released the moment the thread returns; the request itself is answered at
the deadline without waiting for it.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"queue full; retry after {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The server is shutting down and admits no new work."""


class DeadlineExceeded(Exception):
    def __init__(self, stage: str):
        super().__init__(f"deadline passed while {stage}")
        self.stage = stage


class Abandoned(Exception):
    """Raised inside a worker by `check()` when nobody waits for the result any more."""


@dataclass
class JobResult(Generic[T]):
    value: T
    queue_seconds: float
    run_seconds: float


class InferencePool:
    def __init__(self, workers: int, queue_size: int):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers}, {queue_size}")
        self.workers, self.queue_size = workers, queue_size
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="stylecast-infer")
        self._free = workers  # worker slots not held by a thread
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self.admitted = 0  # requests waiting or running, not abandoned
        self.running = 0  # threads computing (abandoned ones included)
        self.closed = False
        self._avg_run = 0.0  # EWMA of run seconds, for Retry-After

    # -- state read by /metrics -------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead divided over the workers."""
        ahead = self.queue_depth + self.running
        return max(1, math.ceil(ahead / self.workers * max(self._avg_run, 0.05)))

    # -- slots (event-loop thread only) -----------------------------------------------------
    async def _acquire(self, timeout: float) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), max(timeout, 0.0))
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release()  # granted just as we gave up: pass the slot on
            else:
                fut.cancel()
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    def _thread_done(self, fut: asyncio.Future) -> None:
        self.running -= 1
        self._release()
        if not fut.cancelled():
            fut.exception()  # mark retrieved: an abandoned job's error has no reader

    # -- the one entry point ----------------------------------------------------------------
    async def submit(self, fn: Callable[[Callable[[], None]], T], deadline: float) -> JobResult[T]:
        """Run `fn(check)` on a worker before `deadline` (time.monotonic()).

        `fn` calls `check()` between its stages; it raises Abandoned once the caller has gone
        (deadline passed, client disconnected, request cancelled). Raises Overloaded, Draining,
        DeadlineExceeded; cancelling the awaiting task abandons the job the same way.
        """
        if self.closed:
            raise Draining()
        if self.admitted >= self.capacity:
            raise Overloaded(self.retry_after())
        self.admitted += 1
        loop = asyncio.get_running_loop()
        abandon = threading.Event()
        t0 = time.monotonic()
        try:
            try:
                await self._acquire(deadline - t0)
            except asyncio.TimeoutError:
                raise DeadlineExceeded("waiting in the queue") from None
            queue_s = time.monotonic() - t0

            def run() -> tuple[T, float]:
                start = time.monotonic()

                def check() -> None:
                    if abandon.is_set() or time.monotonic() > deadline:
                        raise Abandoned()

                check()
                value = fn(check)
                return value, time.monotonic() - start

            self.running += 1
            try:
                thread_fut = loop.run_in_executor(self._executor, run)
            except BaseException:  # executor shut down under us
                self.running -= 1
                self._release()
                raise Draining() from None
            thread_fut.add_done_callback(self._thread_done)
            try:
                value, run_s = await asyncio.wait_for(asyncio.shield(thread_fut), max(deadline - time.monotonic(), 0.0))
            except asyncio.TimeoutError:
                abandon.set()
                raise DeadlineExceeded("running") from None
            except Abandoned:
                raise DeadlineExceeded("running") from None
            except BaseException:
                abandon.set()
                raise
            self._avg_run = run_s if self._avg_run == 0 else 0.8 * self._avg_run + 0.2 * run_s
            return JobResult(value, queue_s, run_s)
        finally:
            self.admitted -= 1

    async def drain(self, timeout: float) -> bool:
        """Stop admitting, wait for admitted and running work to finish. True if it all did."""
        self.closed = True
        end = time.monotonic() + timeout
        while (self.admitted or self.running) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        done = not (self.admitted or self.running)
        self._executor.shutdown(wait=False, cancel_futures=True)
        return done
