"""The held-out eval sets (docs/eval-format.md) built from real code: ``scripts/build_eval_sets.py``.

    builder.py      the sets (fixed sources, files, specs), sampling, build_set, the command line
    extract.py      what the extractors share: DocItem, FileResult, blanking, doc-comment queries
    rust.py, python.py, coq.py, lean.py, tlaplus.py, verus.py   one extractor per language
"""
