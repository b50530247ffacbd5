"""What a long run (`index`, `doctor --fix`, `finetune`) tells a person: an estimate before the
work (``To index: ...``, ``To train: ...``) and, after it, its rate and where the time went
(``Time: walk 0.4s, chunk 3.1s, embed 41.0s, write 2.2s, other 0.3s.``)."""

from __future__ import annotations

import contextlib
import time


@contextlib.contextmanager
def timed(seconds_by_stage: dict, stage: str):
    """Add the seconds the block takes to ``seconds_by_stage[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds_by_stage[stage] = seconds_by_stage.get(stage, 0.0) + time.perf_counter() - started


def about(seconds: float) -> str:
    """``12 s``, ``4 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{max(1, round(seconds)):.0f} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60):.0f} min"
    return f"{seconds / 3600:.1f} h"


def device_kind(encoder) -> str:
    """``cpu`` or ``cuda`` (...): the kind of device ``encoder`` runs on, which a rate is for."""
    device = getattr(encoder, "device", None)
    return str(getattr(device, "type", None) or device or "cpu")


def rate_for(measured: float | None, device: str, defaults: dict[str, float]) -> tuple[float | None, bool]:
    """(rate, measured): the rate this home measured on this kind of device, else the default for
    it (None where there is none, e.g. a GPU: the estimate then names no time)."""
    rate = measured or defaults.get(device)
    return (float(rate) if rate else None), bool(measured)


def time_left(work: float, rate: float | None, unit: str, measured: bool) -> str:
    """The end of an estimate line: ``, about 2 min at ~70 chunks/s (this home's last run).``"""
    if not rate:
        return " (no time yet: no run on this device has measured a rate)."
    source = "this home's last run" if measured else "default for this machine"
    shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"
    return f", about {about(work / rate)} at ~{shown} {unit}/s ({source})."


def rate_phrase(done: int, seconds: float, unit: str) -> str:
    """`` at 61.3 chunks/s`` (empty when nothing was done)."""
    return f" at {done / seconds:.1f} {unit}/s" if done and seconds else ""


def time_line(seconds_by_stage: dict, total: float) -> str:
    """``Time: walk 0.4s, chunk 3.1s, embed 41.0s, write 2.2s, other 0.3s.``: each stage, and
    what is left of ``total`` (setup, lookups)."""
    stages = ", ".join(f"{stage} {t:.1f}s" for stage, t in seconds_by_stage.items())
    other = max(0.0, total - sum(seconds_by_stage.values()))
    return f"Time: {stages}, other {other:.1f}s."
