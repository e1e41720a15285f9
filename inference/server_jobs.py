"""A request's job on the worker pool: its deadline, the queue's refusals and the client leaving.

One path for every HTTP route that runs a network (`/v1/stylize`, the Open Inference Protocol's
`/v2/models/{model}/infer`): a client that hangs up gives up its place in the queue, or tells the
running job to stop, and is counted as `stylecast_rejected_total{reason="disconnect"}`; queue
refusals and deadlines become the server's JSON errors and are counted under their reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import Request

from stylecast.inference.server_limits import ApiError, job_error
from stylecast.inference.server_queue import JobResult
from stylecast.inference.server_state import ServerState


async def wait_disconnect(receive) -> None:
    """Returns when the client goes away (after its body was read, receive() blocks until then)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def run_job(request: Request, state: ServerState, job, deadline_s: float) -> JobResult:
    """The job on the pool, raced against the client going away (which gives up its slot)."""
    task = asyncio.ensure_future(state.pool.submit(job, time.monotonic() + deadline_s))
    gone = asyncio.ensure_future(wait_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        gone.cancel()
        raise
    gone.cancel()
    if task not in done:
        task.cancel()  # the client left: leave the queue, or tell the running job to stop
        with contextlib.suppress(BaseException):
            await task
        state.metrics.rejected.inc(reason="disconnect")
        raise ApiError(499, "client_closed_request", "the client disconnected before the result was ready")
    exc = task.exception()
    if exc is not None:
        err = job_error(exc, deadline_s)
        reason = {503: err.error, 504: "deadline"}.get(err.status)
        if reason:
            state.metrics.rejected.inc(reason=reason)
        raise err
    return task.result()
