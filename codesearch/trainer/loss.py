"""Late-interaction contrastive objectives: plain MaxSim and XTR (their scores:
:func:`codesearch.scoring.maxsim_scores`, :func:`codesearch.scoring.xtr_scores`).

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


def contrastive_loss(scores: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Cross-entropy with the i-th document as the i-th query's positive."""
    labels = torch.arange(scores.shape[0], device=scores.device)
    return torch.nn.functional.cross_entropy(scores / temperature, labels)
