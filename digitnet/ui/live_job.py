"""A job of the training service, live: its snapshots as they change, and the line that says
where it is. The Train tab and the fine-tune panel both follow their jobs through here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import gradio as gr

from digitnet.jobs import (
    CANCELLED,
    FAILED,
    MEASURING,
    PREPARING,
    QUEUED,
    Job,
    JobSnapshot,
    RunRecord,
)
from digitnet.training_service import TrainingService

UPDATE_SECONDS = 0.25  # a follower looks at its job this often: 4 redraws a second at most
IDLE_REDRAW_SECONDS = 1.0  # and redraws a waiting job this often, so its clock moves


def stopped_by(reason: str | None) -> str:
    """ "stopped by you", "stopped by the server's time cap": one "stopped", whatever the reason
    (the service's reasons are phrases such as "stopped by you" or "the server's time cap")."""
    if not reason:
        return "stopped"
    return reason if reason.startswith("stopped") else f"stopped: {reason}"


def status_markdown(snapshot: JobSnapshot) -> str:
    """One line: where the run is, with the epoch, the epoch time and an ETA."""
    name = f"**{snapshot.name}**"
    if snapshot.state == QUEUED:
        if snapshot.position == 0:
            return f"⏳ {name} starts in a moment."
        runs = "run is" if snapshot.position == 1 else "runs are"
        wait = f", about {snapshot.wait_seconds:.0f} s" if snapshot.wait_seconds is not None else ""
        return (
            f"⏳ {name} waits its turn: {snapshot.position} {runs} ahead of yours{wait} "
            f"(this server trains one at a time)."
        )
    if snapshot.state == PREPARING:
        return f"⏳ {name}: loading the digits…"
    if snapshot.state == CANCELLED:
        return f"✖️ {name} was cancelled ({snapshot.stop_reason or 'stopped'})."
    if snapshot.state == FAILED:
        return f"❌ {name} failed: {snapshot.error}"
    if snapshot.record is not None:
        return done_markdown(snapshot.record)
    step, epochs = snapshot.last_step, snapshot.epochs
    parts = [name]
    if step is not None:
        parts.append(f"epoch {step.epoch}/{step.epochs}")
        parts.append(f"step {step.step}/{step.total_steps}")
    if epochs:
        parts.append(f"last epoch {epochs[-1].seconds:.1f} s")
        validated = [e for e in epochs if e.val_accuracy is not None]
        if validated:
            parts.append(f"validation {100 * validated[-1].val_accuracy:.1f}%")
    if snapshot.state == MEASURING:
        ended = stopped_by(snapshot.stop_reason) if snapshot.stop_reason else "trained"
        return f"⏱️ {' · '.join(parts)} · {ended}; measuring it on canvas-like drawings and saving…"
    if snapshot.stop_reason:
        return (
            f"🛑 {' · '.join(parts)} · stopping ({snapshot.stop_reason.removeprefix('stopped ')})…"
        )
    if step is not None:
        parts.append(f"ETA {step.eta_seconds:.0f} s")
    return "🏋️ " + " · ".join(parts)


def done_markdown(record: RunRecord) -> str:
    summary = record.summary()
    drawings = summary["drawing_accuracy"]
    stopped = (
        f" {stopped_by(summary['stop_reason']).capitalize()} after epoch {summary['epochs']};"
        f" it keeps epoch {summary['best_epoch']}'s weights."
        if summary["stopped"]
        else ""
    )
    return (
        f"✅ **{record.name}** is ready: validation **{100 * summary['val_accuracy']:.1f}%**"
        + (f", canvas-like drawings **{100 * drawings:.1f}%**" if drawings is not None else "")
        + f", trained in {summary['seconds']:.0f} s.{stopped} Pick **{record.name}** under "
        f"*Model* on the *Draw* tab and draw against it."
    )


async def follow_job(service: TrainingService, job: Job) -> AsyncIterator[JobSnapshot]:
    """A job's snapshots as it goes, one per change (and one every IDLE_REDRAW_SECONDS while
    nothing changes, so a page that missed an update catches up), then its finished one.

    Closing it early (the page closed, the client went away; use ``contextlib.aclosing``)
    cancels the job. A failed job is a one-line gr.Error.
    """
    seen, shown_at = -1, 0.0
    try:
        while not (snapshot := job.snapshot()).finished:
            if snapshot.version != seen or time.monotonic() - shown_at > IDLE_REDRAW_SECONDS:
                seen, shown_at = snapshot.version, time.monotonic()
                yield snapshot
            await asyncio.sleep(UPDATE_SECONDS)
    finally:
        if not job.finished:
            service.cancel(job, "the page was closed")
    if snapshot.state == FAILED:
        raise gr.Error(snapshot.error, print_exception=False)
    yield snapshot
