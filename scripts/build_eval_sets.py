#!/usr/bin/env python3
"""Build the held-out retrieval eval sets (CodeSearchNet style) from code on this machine.

The command line of :mod:`codesearch.eval.sets.builder` (same arguments, same outputs; the sets,
their sources and the language extractors live in ``codesearch/eval/sets/``):

    python scripts/build_eval_sets.py                       # all sets, seed 0
    python scripts/build_eval_sets.py --sets rust --max-queries 100

See evals/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This checkout's package, not whichever codesearch is installed: the builder writes evals/ of
# the checkout it lives in.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.eval.sets.builder import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
