"""The picture of a training phase: its loss and eval curves, from the files train_phase writes."""

from __future__ import annotations

import json
from pathlib import Path


def plot_phase(phase_dir: Path, title: str) -> None:
    """``phase_dir/curves.png``: the training loss per step (metrics.jsonl) and the eval curve
    (eval.jsonl: the target's held-out P@1 and MRR@10 as training went)."""
    metrics = phase_dir / "metrics.jsonl"
    if not metrics.exists():
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is optional
        return
    rows = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()]
    evals_file = phase_dir / "eval.jsonl"
    evals = [json.loads(l) for l in evals_file.read_text().splitlines() if l.strip()] if evals_file.exists() else []
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(10 if evals else 6, 3.5), squeeze=False)
    ax = axes[0][0]
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    if evals:
        ax = axes[0][1]
        for metric in ("p@1", "mrr@10"):
            ax.plot([r["step"] for r in evals], [r[metric] for r in evals], marker="o", label=metric)
        ax.set_xlabel("step")
        ax.set_ylabel(f"held-out {evals[-1].get('target', '')} ({evals[-1].get('n', '?')} queries)")
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(phase_dir / "curves.png", dpi=100)
    plt.close(fig)
