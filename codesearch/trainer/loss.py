"""Late-interaction contrastive objectives: plain MaxSim and XTR.

Both score every query against every document of the batch (in-batch negatives, plus any
hard negatives appended to the documents) and train with cross-entropy towards each query's
own positive.

XTR (Lee et al., 2023, "Rethinking the Role of Token Retrieval in Multi-Vector Retrieval"):
during training each query token retrieves its top-k tokens from ALL documents of the batch;
a document's score sums, over query tokens, the best similarity among that token's retrieved
tokens which belong to the document (0 when none does), normalised by how many query tokens
retrieved anything from it. This trains the model so that the right document's tokens are
retrieved at all, which is what the token-level ANN at search time relies on.
"""

from __future__ import annotations

import torch


def maxsim_scores(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """(B, Lq, D) x (N, Ld, D) -> (B, N): sum over query tokens of the best document token."""
    sim = torch.einsum("bqd,ntd->bnqt", q, d)
    sim = sim.masked_fill(~d_mask[None, :, None, :], -1e4)
    best = sim.max(dim=-1).values  # (B, N, Lq)
    best = best * q_mask[:, None, :]
    return best.sum(-1) / q_mask.sum(-1, keepdim=True).clamp(min=1)


def xtr_scores(
    q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor, k: int
) -> torch.Tensor:
    """XTR in-batch token retrieval scores (B, N)."""
    n_docs, doc_len = d.shape[0], d.shape[1]
    flat = d.reshape(n_docs * doc_len, -1)
    flat_mask = d_mask.reshape(-1)
    sim = torch.einsum("bqd,td->bqt", q, flat).masked_fill(~flat_mask[None, None, :], -1e4)  # (B, Lq, N*Ld)
    k = min(k, int(flat_mask.sum()))
    top = sim.topk(k, dim=-1)
    retrieved = torch.zeros_like(sim, dtype=torch.bool).scatter_(-1, top.indices, True)
    sim = sim.masked_fill(~retrieved, 0.0).reshape(q.shape[0], q.shape[1], n_docs, doc_len)
    hit = retrieved.reshape(q.shape[0], q.shape[1], n_docs, doc_len).any(-1)  # (B, Lq, N)
    best = sim.max(dim=-1).values * hit  # 0 where the token retrieved nothing from the doc
    best = best * q_mask[:, :, None]
    z = (hit & q_mask[:, :, None]).sum(1).clamp(min=1)  # query tokens that retrieved something per doc
    return best.sum(1) / z


def contrastive_loss(scores: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Cross-entropy with the i-th document as the i-th query's positive."""
    labels = torch.arange(scores.shape[0], device=scores.device)
    return torch.nn.functional.cross_entropy(scores / temperature, labels)
