"""The `codesearch` command line: thin click commands over the indexer, searcher and eval."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import click

from codesearch import __version__
from codesearch.settings import METHODS, SearchSettings

# Nothing here may reach a model hub: every model is loaded from local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LANCE_LOG", "error")
# Library deprecation notices (transformers, peft, lancedb, ...) are nothing a user can act on:
# stderr carries only codesearch's own messages and real errors.
for _module in (r"transformers(\..*)?", r"peft(\..*)?", r"torch(\..*)?", r"lancedb(\..*)?", r"pyarrow(\..*)?"):
    warnings.filterwarnings("ignore", category=FutureWarning, module=_module)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=_module)


class Context:
    def __init__(self, home: str | None, model: str | None, config: str | None, verbose: bool):
        from codesearch.config import load_settings

        self.settings = load_settings(config, home=home, model=model)
        self.verbose = verbose
        self._encoder = None
        self._query_encoder = None

    @property
    def home(self) -> Path:
        return Path(self.settings["home"])

    def encoder(self):
        """The torch encoder (documents where they run in torch; a model only torch runs), loaded once."""
        if self._encoder is None:
            from codesearch.model import load_encoder

            self._encoder = self._load(load_encoder)
        return self._encoder

    def query_encoder(self):
        """What a search needs of the model: the numpy query encoder (no torch; see
        codesearch/model/query.py), or the torch encoder already loaded."""
        if self._encoder is not None:
            return self._encoder
        if self._query_encoder is None:
            from codesearch.model import load_query_encoder

            self._query_encoder = self._load(load_query_encoder)
        return self._query_encoder

    def index_encoder(self):
        """What an index run encodes with: the torch encoder where it is loaded (or the only one
        that runs this model), else the numpy query encoder with a document encoder loaded at the
        first document to embed (codesearch/model/ondemand.py): a run with nothing to embed never
        loads it. On a CPU that is the torch-free 8-bit one (codesearch/model/docint8.py), else
        torch (as :func:`codesearch.model.load_index_encoder`, with this command's models kept)."""
        from codesearch.model import load_query_encoder
        from codesearch.model.ondemand import OnDemandEncoder
        from codesearch.model.query import QueryEncoder

        if self._encoder is not None:
            return self._encoder
        queries = self._query_encoder or self._load(load_query_encoder)  # (not kept here: see OnDemandEncoder)
        if not isinstance(queries, QueryEncoder):
            self._encoder = queries  # (the torch encoder)
            return queries
        from codesearch.model.docint8 import document_loader

        return OnDemandEncoder(queries, document_loader(queries, self.encoder))

    def loaded_index_encoder(self):
        """The index encoder with its document encoder loaded now (`watch`, so that its first change
        is searchable at once; `doctor --fix`, whose repair's time leaves the load out): torch-free
        where documents run in 8 bits. A model that cannot load is one line (exit 2)."""
        from codesearch.model.ondemand import ModelLoadError, OnDemandEncoder

        encoder = self.index_encoder()
        if isinstance(encoder, OnDemandEncoder):
            try:
                encoder.document_encoder()
            except ModelLoadError as exc:
                _fail(str(exc))
        return encoder

    def _load(self, loader):
        from codesearch.config import resolve_model
        from codesearch.model.encoder import UnsafeWeightsError

        try:
            return loader(resolve_model(self.settings))
        except UnsafeWeightsError as exc:
            _fail(str(exc))

    def store(self, create: bool):
        from codesearch.indexer.store import Store

        return Store(self.home, create=create)

    def searcher(self):
        from codesearch.search import Searcher

        store = self.store(create=False)
        return Searcher(store, self.query_encoder(), self.settings)


pass_ctx = click.make_pass_decorator(Context)


def _fail(message: str) -> None:
    click.echo(f"codesearch: error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", envvar="CODESEARCH_HOME", type=click.Path(file_okay=False),
              help="Index folder. Default: $CODESEARCH_HOME, else ~/.local/share/codesearch.")
@click.option("--model", help='Encoder: "default" (this home\'s personal model if any, else the shipped one), '
              '"shipped" (the model shipped with codesearch), "base" (untrained base model) or a model folder.')
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Settings file (YAML). Default: ~/.config/codesearch/config.yaml if it exists.")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
@click.version_option(__version__, prog_name="codesearch")
@click.pass_context
def main(ctx, home, model, config_file, verbose):
    """Local semantic code search for Rust, formal methods (Lean, TLA+, SMT-LIB, Coq) and your own code.

    \b
    Index some folders, then search them in plain words:
      codesearch index ~/repos
      codesearch search "check if a value is within bounds"
    Everything runs locally and offline; the index lives in --home.
    """
    from codesearch.heap import limit_arenas

    # Before any thread allocates: an index run's memory grew with the corpus in LanceDB's and
    # the encoder's per-thread arenas (40k chunks without the model: 1.65 GB peak, 1.34 GB with two; docs/speed.md).
    limit_arenas()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        ctx.obj = Context(home, model, config_file, verbose)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


# ---------------------------------------------------------------------------- index
@contextlib.contextmanager
def _index_progress(quiet: bool):
    """(progress, on_estimate) for an Indexer run: a bar per stage and the estimate line, both
    on stderr (never stdout: --json); nothing when ``quiet``."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}
    # A terminal gets a live bar; a log file (stderr redirected) a line every 30 s, not a frame
    # per batch.
    every = 0.1 if sys.stderr.isatty() else 30.0

    def progress(stage: str, done: int, total: int) -> None:
        if quiet:
            return
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "files" if stage == "chunking" else "chunks"
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
                                     mininterval=every)
        bar.total = total
        bar.update(done - bar.n)  # drawn at most every `every` seconds

    def estimate(e) -> None:  # one line before the work starts: e.line()
        if not quiet:
            click.echo(e.line(), err=True)

    try:
        yield progress, estimate
    finally:
        for bar in bars.values():
            bar.close()


def _run_index(ctx: Context, paths, quiet: bool):
    from codesearch.indexer.pipeline import Indexer

    indexer = Indexer(ctx.store(create=True), ctx.index_encoder(), ctx.settings)
    with _index_progress(quiet) as (progress, estimate):
        return indexer.run(paths, progress=progress, on_estimate=estimate)


def _print_summary(summary) -> None:
    from codesearch.timing import rate_phrase, time_line

    s = summary
    rate = rate_phrase(s.embedded, s.seconds, "chunks")
    rate += " over the run" if rate else ""
    click.echo(
        f"Indexed {s.files_seen} files in {s.repos} {'repository' if s.repos == 1 else 'repositories'} in {s.seconds:.1f}s: "
        f"{s.files_indexed} new or changed, {s.files_unchanged} unchanged, {s.files_removed} removed."
    )
    click.echo(f"Chunks written: {s.chunks} ({s.embedded} embedded{rate}, {s.reused} reused). Index total: {s.total_chunks}.")
    click.echo(time_line(s.stage_seconds, s.seconds))
    if s.model_seconds >= 0.05:  # (loaded once there was something to embed: not in the times above)
        click.echo(f"Model loaded in {s.model_seconds:.1f}s.")
    if s.skipped:
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(s.skipped.items()))
        click.echo(f"Skipped files: {parts}.")
        for reason, example in sorted(s.skipped_examples.items()):
            click.echo(f"  {reason}: e.g. {example}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def index(ctx: Context, paths, as_json, quiet):
    """Index (or bring up to date) the repositories under PATHS.

    Finds git repositories below each path, respects .gitignore, .ignore and .codesearchignore,
    never indexes .git, build output, dependencies or secrets, and embeds only chunks whose text
    changed since the last run. Safe to interrupt: running it again finishes the job.
    Run in a terminal, it then starts the home's search service in the background, so that the
    next `codesearch search` answers at once (off: search.service: false).
    """
    from codesearch.indexer.store import DiskFull, IndexDamaged, IndexLocked, damage_message, is_disk_full
    from codesearch.model.ondemand import ModelLoadError

    for p in paths:
        if not Path(p).expanduser().exists():
            _fail(f"{p} does not exist")
    try:
        summary = _run_index(ctx, paths, quiet or as_json)
    except (IndexLocked, FileNotFoundError, IndexDamaged, DiskFull, ModelLoadError) as exc:
        _fail(str(exc))
    except (RuntimeError, OSError) as exc:  # a read failing mid-run: never a success over a broken index
        if is_disk_full(exc):  # before the indexer ran (creating the home)
            _fail(str(ctx.store(create=True).disk_full()))
        damaged = damage_message(exc)
        if damaged is None:
            raise
        _fail(damaged)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_summary(summary)
    _start_service_for_a_person(ctx)


def _start_service_for_a_person(ctx: Context) -> None:
    """After an `index` run in a terminal, start the home's search service in the background, so
    that the person's first search answers from a warm process (it would start one anyway; see
    codesearch/service.py). Not for scripts and cron jobs (no terminal): they may never search."""
    from codesearch import service

    if not (sys.stdin.isatty() or sys.stderr.isatty()) or not service.enabled(ctx.settings):
        return
    # (A service running already keeps the home, and the new one gives up at once: that one reads
    # the new rows at its next search. No ping first: one still warming up would not answer it.)
    flags = click.get_current_context().find_root().params
    service.start(ctx.settings, model=flags.get("model"), config_file=flags.get("config_file"))


# ---------------------------------------------------------------------------- search
def _check_roles(ctx, param, value) -> tuple[str, ...]:
    """--role values (repeatable, comma lists allowed), or a usage error naming the valid ones."""
    from codesearch.roles import check_roles

    try:
        return check_roles(value or ())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("query")
@click.option("-n", "--limit", type=click.IntRange(*SearchSettings.RANGES["limit"]), default=None, help="How many results (default 10).")
@click.option("--lang", multiple=True, help="Only these languages (rust, python, lean, tlaplus, smtlib, coq, ...; aliases: rs, py, tla, rocq, ...). Repeatable.")
@click.option("--kind", multiple=True, help="Only these kinds (function, method, struct, theorem, operator, ...: those in the index). Repeatable.")
@click.option("--repo", help="Only this repository (folder name or path).")
@click.option("--path", "path_glob", help="Only paths matching this glob (e.g. 'src/*.rs'); without * it is a prefix.")
@click.option("--role", "roles", multiple=True, callback=_check_roles,
              help="Only files of these path roles: lib, test, bench, example, doc, generated, vendor "
                   "(from the path: tests/, benches/, examples/, *.md, ...). Repeatable or a comma list.")
@click.option("--method", type=click.Choice(METHODS), default=None,
              help="Scoring: hybrid (default: MaxSim + full text), multivector (MaxSim only), dense (one vector), bm25.")
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON list.")
@click.option("--explain", is_flag=True,
              help="Say why each result matched: every query word with the code token it met (line, column) and "
                   "its share of the score, the matched tokens marked in the snippet, and in hybrid mode the "
                   "words also found as words. In --json: matches, lexical and prior per result.")
@pass_ctx
def search(ctx: Context, query, limit, lang, kind, repo, path_glob, roles, method, as_json, explain):
    """Search the index for QUERY (plain words or a code fragment).

    Overlapping spans of one file come back once (the better-scoring, or the smaller on a near
    tie). Each result shows its path role (lib, test, bench, example, doc, generated, vendor).
    """
    from codesearch import service

    params = dict(query=query, limit=limit, lang=lang, kind=kind, repo=repo, path_glob=path_glob, roles=roles,
                  method=method, as_json=as_json, explain=explain)
    if ctx.verbose or not service.enabled(ctx.settings):
        run_search(ctx, **params)
        return
    # The home's search service (model and index already loaded) prints the same; else search
    # here, then start one for next time (see codesearch/service.py).
    reply = service.search(ctx.settings, params, color=sys.stdout.isatty())
    if reply is not None:
        service.emit(reply)
    flags = click.get_current_context().find_root().params
    try:
        run_search(ctx, **params)
    finally:
        service.start(ctx.settings, model=flags.get("model"), config_file=flags.get("config_file"))


def run_search(ctx: Context, query, limit, lang, kind, repo, path_glob, roles, method, as_json, explain=False) -> None:
    """`codesearch search` in this process (also what the search service runs for a client)."""
    from codesearch.filters_check import check_filters
    from codesearch.search import Filters

    if not query.strip():
        _fail("the query is empty")
    try:
        filters = Filters(lang=lang, kind=kind, repo=repo, path=path_glob, role=roles)
        check_filters(filters, ctx.store(create=False))  # unknown lang/kind/repo: an error, not "No results."
        searcher = ctx.searcher()
        results = searcher.search(query, limit=limit, filters=filters, method=method, explain=explain)
    except (FileNotFoundError, RuntimeError, ValueError, OSError) as exc:
        from codesearch.indexer.store import DAMAGED_HINT, is_read_error

        _fail(DAMAGED_HINT if is_read_error(exc) else str(exc))
    if as_json:
        click.echo(json.dumps([r.as_json() for r in results], indent=2))
        return
    if not results:
        click.echo("No results.")
        return
    for i, r in enumerate(results, 1):
        title = f"{r.kind} {r.name}".strip()
        click.echo(click.style(f"{i:>2}. {r.path}:{r.start_line}-{r.end_line}", bold=True) + f"  {title}  [{r.language}, {r.role}, {r.score:.3f}]")
        if explain and r.matches is not None:
            from codesearch.explain import format_explained

            color = click.get_current_context().color
            for line in format_explained(r, color=sys.stdout.isatty() if color is None else color):
                click.echo(f"      {line}")
        else:
            for line in r.snippet.splitlines():
                click.echo(f"      {line}")
        click.echo()


@main.command(hidden=True)
@pass_ctx
def serve(ctx: Context):
    """Run the search service of --home (`codesearch search` starts it; see codesearch/service.py)."""
    from codesearch.service import serve as run_service

    sys.exit(run_service(ctx, config_file=click.get_current_context().find_root().params.get("config_file")))


# ---------------------------------------------------------------------------- eval
@main.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="Corpus folder the eval's paths are relative to.")
@click.option("--method", type=click.Choice(METHODS), default=None,
              help="Score one method (default: the search default) to compare baselines on the same queries.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report (metrics and per-query results) as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
def eval_cmd(ctx: Context, file, root, method, as_json, quiet):
    """Score search on an eval set (JSONL, see docs/eval-format.md): P@1, MRR@10, Recall@5.

    Indexes ROOT first (incrementally), then searches only within ROOT.
    """
    from codesearch.eval import EvalSetError, check_root, evaluate_search, format_report, load_eval_set

    root_path = Path(root).expanduser().absolute()
    try:
        queries = load_eval_set(file)
        if not queries:  # (before indexing ROOT, which may take minutes, to print zeros)
            raise EvalSetError(f"{file}: no queries (one JSON object a line: docs/eval-format.md)")
        n_files, missing = check_root(queries, root_path)
    except EvalSetError as exc:
        _fail(str(exc))
    if missing and not as_json:
        click.echo(f"codesearch: warning: {len(missing)} of the {n_files} files the eval set names are missing "
                   f"under {root_path} (e.g. {missing[0]}); their queries cannot score", err=True)
    summary = _run_index(ctx, [root_path], quiet or as_json)
    if not quiet and not as_json:
        click.echo(f"Index of {root_path}: {summary.total_chunks} chunks ({summary.embedded} embedded now).", err=True)
    searcher = ctx.searcher()
    from tqdm import tqdm

    bar = tqdm(total=len(queries), desc="queries", file=sys.stderr, disable=quiet or as_json, leave=False)
    report = evaluate_search(queries, searcher, root_path, method, on_query=lambda: bar.update(1))
    bar.close()
    if as_json:
        report["missing_files"] = missing
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_report(report, title=f"{Path(file).name} ({method or searcher.method})"))


# ---------------------------------------------------------------------------- bench
@main.command()
@click.option("--queries", "n_queries", type=click.IntRange(1, None), default=100, show_default=True,
              help="How many timed queries.")
@click.option("--index", "index_paths", multiple=True, type=click.Path(exists=True),
              help="First index this folder (repeatable) and report indexing throughput.")
@click.option("--synthetic", "synthetic", type=click.IntRange(1, None), default=None,
              help="Measure on a throw-away index of this many synthetic chunks (real vectors plus noise) instead.")
@click.option("--distinct", type=click.IntRange(1, None), default=None,
              help="With --synthetic: distinct token-vector matrices behind the chunks (default min(N, 100000)).")
@click.option("--synthetic-home", type=click.Path(file_okay=False), default=None,
              help="With --synthetic: where the synthetic index is built and kept for reuse (default $TMPDIR).")
@click.option("--watch-edits", type=click.IntRange(0, 1000), default=0,
              help="Also time this many save-to-searchable round trips through the watcher.")
@click.option("--chunks", "chunks_dir", type=click.Path(), default=None,
              help="Instead: chunk coverage of this folder per language (share of lines only in unnamed "
                   "fallback chunks, parse errors, chunks/s); no model, no index.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def bench(ctx: Context, n_queries, index_paths, synthetic, distinct, synthetic_home, watch_edits, chunks_dir, as_json):
    """Measure indexing throughput, warm query latency (p50/p95; exact and ANN paths), watcher
    latency, index size and memory, on the current index or a synthetic one (--synthetic N).

    Recall: flat_recall_at_10 (exact pooled-vector candidates) and, where the index has an IVF
    index, ann_recall_at_10 are the share of the ten results a multi-vector search would return
    if every chunk were its candidate (exhaustive MaxSim, then the same role prior and places)
    that the candidate stage finds.

    Memory: peak_rss_mb is the whole bench process's peak (its searchers and the exhaustive
    recall truth included); with --index, index_peak_rss_mb is the index run's own.

    With --chunks DIR: how well the chunker cuts DIR instead, per language (no model loaded)."""
    if chunks_dir is not None:
        _bench_chunks(chunks_dir, as_json)
        return
    from codesearch.bench import run_bench, run_synthetic

    try:
        if synthetic:
            shown: dict = {}

            def progress(stage: str, done: int, total: int) -> None:
                step = 10 * done // max(total, 1)
                if not as_json and shown.get(stage) != step:
                    shown[stage] = step
                    click.echo(f"building the synthetic index: {stage} {done}/{total}", err=True)

            figures = run_synthetic(ctx, synthetic, n_queries=n_queries, distinct=distinct, folder=synthetic_home,
                                    watch_edits=watch_edits, progress=progress)
        else:
            figures = run_bench(ctx, n_queries=n_queries, index_paths=index_paths, watch_edits=watch_edits)
    except (FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            click.echo(f"{k:>28}: {v}")


def _bench_chunks(folder: str, as_json: bool) -> None:
    from codesearch.indexer.chunking.coverage import format_table, measure

    if not Path(folder).expanduser().exists():
        _fail(f"{folder} does not exist")
    result = measure(Path(folder).expanduser())
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


# ---------------------------------------------------------------------------- chunks
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--lang", help="Cut every file as this language (rust, python, lean, tlaplus, smtlib, coq, text, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: {path, start_line, end_line, language, "
              "kind, name, context, lines} per chunk.")
@pass_ctx
def chunks(ctx: Context, paths, lang, as_json):
    """Show how the indexer cuts files into chunks: span, kind, name and context, one line per chunk.

    \b
    A folder stands for every file `codesearch index` would index under it (same ignore
    rules). Lines are 1-based and inclusive; "window" and "code" chunks without a name are
    the fallback for text the chunker could not attribute to a declaration. No model is loaded.
    """
    from codesearch.indexer import walk as walker
    from codesearch.indexer.chunking import chunk_text, language_for_path
    from codesearch import languages as registry

    chunked = registry.structured_names() | {registry.TEXT}
    if lang is not None and lang not in chunked:
        _fail(f"unknown language {lang!r}: one of {', '.join(sorted(chunked))}")
    files: list[tuple[str, str, str]] = []  # (shown path, path relative to its repository, text)
    allow = walker.walk_options(ctx.settings)["secrets_allow"]  # (as `index` walks)
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            _fail(f"{p} does not exist")
        base, is_dir = path.absolute(), path.is_dir()
        for item in walker.walk([base], secrets_allow=allow):  # a single file comes back as itself, or skipped
            reason = item.reason if isinstance(item, walker.Skipped) else None
            if reason is None:
                try:
                    text = walker.read_text(item)
                except walker.SkipFile as exc:
                    reason = exc.reason
            if reason is not None and not is_dir:
                _fail(f"{p} is not indexable ({reason})")
            if reason is not None:
                if not reason.startswith("ignored"):  # (what an ignore file leaves out is no news here)
                    click.echo(f"codesearch: skipped {item.path} ({reason})", err=True)
                continue
            files.append((str(path / item.path.relative_to(base)) if is_dir else p, item.rel_path, text))
    out = []
    for shown, rel, text in files:
        cut = chunk_text(rel, text, language=lang)
        if as_json:
            out.extend({"path": shown, "start_line": c.start_line, "end_line": c.end_line, "language": c.language,
                        "kind": c.kind, "name": c.name, "context": c.context, "lines": c.n_lines} for c in cut)
            continue
        language = lang or language_for_path(rel) or "text"
        click.echo(click.style(shown, bold=True) + f"  [{language}, {len(cut)} chunk{'s' if len(cut) != 1 else ''}]")
        for c in cut:
            span = f"{c.start_line}-{c.end_line}"
            line = f"  {span:>11}  {c.kind:<12} {c.name or '-'}"
            click.echo(line + (f"  ({c.context})" if c.context else ""))
    if as_json:
        click.echo(json.dumps(out, indent=2))


# ---------------------------------------------------------------------------- data
@main.group()
def data():
    """Training data for the trainer: mine (query, code) pairs from source trees."""


@data.command("build")
@click.option("--config", "data_config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Sources file (YAML). Default: the shipped config/data.yaml.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data/pairs", show_default=True,
              help="Output folder: train.jsonl, heldout.jsonl, summary.json.")
@click.option("--max-per-source", type=click.IntRange(1, None), default=None,
              help="Cap on the pairs mined from each source (lowers the config's max_pairs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the file order, MinHash and random fill-in negatives.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_build(data_config, out_dir, max_per_source, seed, as_json):
    """Mine training pairs: doc comments, names, tests, commits and formal-methods phrasings.

    \b
    Writes OUT/train.jsonl and OUT/heldout.jsonl (one pair per line: query, positive,
    negatives, domain, language, source, origin) and OUT/summary.json (counts per domain,
    source and language; sources used and skipped). The eval sets' sources are never read.
    """
    from codesearch.trainer.mining.dataset import build_from_config

    def say(msg: str) -> None:
        if not as_json:
            click.echo(msg, err=True)

    try:
        summary = build_from_config(data_config, out_dir, max_per_source=max_per_source, seed=seed, progress=say)
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for side in ("train", "heldout"):
            c = summary[side]
            click.echo(f"{side}: {c['total']} pairs  domains {c['domain']}  sources {c['source']}")
        for s in summary["sources_skipped"]:
            click.echo(f"skipped source {s['name']}: {s['reason']} ({s['path']})")
        click.echo(f"wrote {Path(out_dir) / 'train.jsonl'}, heldout.jsonl, summary.json in {summary['wall_s']:.0f}s")
    if not summary["train"]["total"] + summary["heldout"]["total"]:
        used, skipped = len(summary["sources_used"]), len(summary["sources_skipped"])
        _fail("no pairs mined: " + ("the config lists no sources" if not used + skipped else
                                    f"{skipped} of its {used + skipped} sources skipped (missing or empty), "
                                    f"{used} with nothing to mine (see summary.json)"))


@data.command("pack")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output folder: train.pack.xz, heldout.pack.xz, summary.json.")
@click.option("--max-chars", type=click.IntRange(min=64), default=1500, show_default=True,
              help="Cut every text to this many characters (at a line end).")
@click.option("--negatives", type=click.IntRange(min=0), default=1, show_default=True,
              help="Hard negatives kept per pair.")
def data_pack(folders, out_dir, max_chars, negatives):
    """Pack pairs folders into one small folder that `train` reads (for a GPU machine).

    \b
    Each text is stored once (a hard negative is usually another pair's positive), cut to
    --max-chars, and xz-compressed: OUT/train.pack.xz and OUT/heldout.pack.xz. Name OUT in a
    training config's `data:` list as you would a `data build` folder.
    """
    from codesearch.trainer.pack import pack_folders

    try:
        pack_folders([Path(f) for f in folders], Path(out_dir), max_chars=max_chars, negatives=negatives,
                     progress=lambda m: click.echo(m, err=True))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"wrote {Path(out_dir) / 'train.pack.xz'}, heldout.pack.xz, summary.json")


# ---------------------------------------------------------------------------- lsp
@main.command()
@click.option("--stdio", is_flag=True, help="Talk LSP on stdin/stdout (the default and only transport).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Also write the server log to this file.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="Server log level (the log goes to stderr, never stdout).")
@click.pass_context
def lsp(click_ctx, stdio, log_file, log_level):
    """Run the language server (for VS Code, Neovim, Helix, Emacs and any LSP client).

    \b
    Searches the workspace folders the editor opens and keeps their index current:
    codesearch/search, workspace/symbol and the codesearch.* commands. See README "Editors".
    --home, --model and --config set defaults that the editor's settings override.
    """
    # Small matrix products only: one BLAS thread (set before numpy loads) answers faster than
    # several competing with the model's threads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from codesearch.lsp.config import LspConfig
    from codesearch.lsp.server import main as serve

    flags = click_ctx.parent.params
    serve(
        LspConfig(home=flags.get("home"), model=flags.get("model"), config_file=flags.get("config_file")),
        log_level=log_level if not click_ctx.obj.verbose else "info",
        log_file=log_file,
    )


# ---------------------------------------------------------------------------- mcp
@main.command("mcp")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--no-index", "no_index", is_flag=True, help="Do not bring the roots' index up to date at start (the index tool still does).")
@click.option("--no-watch", "no_watch", is_flag=True, help="Do not watch the roots for changes.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Also write the server log to this file.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="Server log level (the log goes to stderr, never stdout).")
@click.pass_context
def mcp_cmd(click_ctx, roots, no_index, no_watch, log_file, log_level):
    """Run a Model Context Protocol server on stdin/stdout, for coding agents.

    \b
    Tools: search, chunks (how a file is cut), status, index (with progress).
    ROOTS are the folders it searches and keeps indexed (incrementally, then watched);
    without any, the client's roots if it sends some, else the current directory.
    Same engine, home (--home) and results as `codesearch lsp`. See docs/mcp.md.
    Register it with an MCP client as:
      {"mcpServers": {"codesearch": {"command": "codesearch", "args": ["mcp", "/path/to/repos"]}}}
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # (as for lsp: small products, one BLAS thread)
    from codesearch.lsp.config import LspConfig
    from codesearch.mcp_server import main as serve

    flags = click_ctx.parent.params
    serve(
        LspConfig(home=flags.get("home"), model=flags.get("model"), config_file=flags.get("config_file")),
        list(roots), index_on_start=not no_index, watch=not no_watch,
        log_level=log_level if not click_ctx.obj.verbose else "info", log_file=log_file,
    )


# ---------------------------------------------------------------------------- train
@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A curriculum (config/curriculum.yaml) or a single phase (config/phases/rust.yaml).")
@click.option("--data", type=click.Path(file_okay=False), help="Pairs folder (train.jsonl and heldout.jsonl, or their packs from `data pack`); overrides the config's (which may list several).")
@click.option("--output", type=click.Path(file_okay=False), help="Run folder; overrides the config.")
@click.option("--max-steps", type=click.IntRange(1, None), default=None, help="Stop each phase after this many steps (resume later by running again).")
def train(config_path, data, output, max_steps):
    """Train the encoder: curriculum phases, each gated on held-out pairs.

    \b
    Resumable: run the same command again after an interruption.
    Writes OUTPUT/model (a model folder for --model), OUTPUT/report.md (the eval table) and a
    loss plot per phase. Multi-GPU: `accelerate launch -m codesearch.cli train --config ...`.
    """
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum

    try:
        cfg = CurriculumConfig.load(config_path)
        if data:
            cfg.data = Path(data)
        if output:
            cfg.output = Path(output)
        from codesearch.trainer.pack import require_splits

        for folder in cfg.data_folders:
            require_splits(folder)  # FileNotFoundError: one line, below
        report = run_curriculum(cfg, max_steps_per_phase=max_steps)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(report.markdown("p@1"))
    click.echo(report.markdown("mrr@10"))
    if (cfg.output / "model").exists():
        click.echo(f"Model: {cfg.output / 'model'} (use it with --model {cfg.output / 'model'})")


@main.command()
@click.option("--personal", is_flag=True, help="Train the personal adapter on the code indexed in this home (required).")
@click.option("--steps", type=click.IntRange(1, None), default=None, help="Training steps (default: config/phases/personal.yaml).")
@click.option("--batch-size", type=click.IntRange(1, None), default=None, help="Pairs per step (default: the phase config's).")
@click.option("--max-pairs", type=click.IntRange(1, None), default=20000, show_default=True, help="Pairs mined per indexed folder at most.")
@click.option("--phase-config", type=click.Path(exists=True, dir_okay=False), help="Another phase config to train with.")
@click.option("--remove", is_flag=True, help="Go back to the shipped model: delete the personal model, update the index.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def finetune(ctx: Context, personal, steps, batch_size, max_pairs, phase_config, remove, as_json):
    """Specialise the model on your own code (`--personal`).

    \b
    Mines pairs from the repositories indexed in this home (doc comments, names, tests, git
    history) and from the results you marked in the editor, trains the personal LoRA adapter
    on them (with some general code against forgetting), and keeps it only if held-out
    queries on your own code improve, those in plain words (doc comments, commit messages,
    queries you marked in the editor) lose at most 0.02 MRR@10, and general code at most
    0.03 P@1. With fewer than 30 plain-words queries to hold out it trains nothing. A kept
    adapter becomes this home's model ("default" resolves to HOME/personal/model) and the
    index is brought up to date, embedding again only what the new adapter encodes.
    Takes about 10-25 minutes on a 2-core CPU. Report: HOME/personal/runs/<time>/report.json.
    """
    from codesearch.trainer.personal import finetune_personal, remove_personal_model

    def say(msg: str) -> None:
        if not as_json:
            click.echo(msg, err=True)

    if remove:
        out = remove_personal_model(ctx.settings, say=say)
        click.echo(json.dumps(out) if as_json else ("Personal model removed." if out["removed"] else "No personal model in this home."))
        return
    if not personal:
        _fail("say what to fine-tune: `codesearch finetune --personal` (or --remove)")
    try:
        report = finetune_personal(ctx.settings, steps=steps, batch_size=batch_size, max_pairs=max_pairs,
                                   phase_config=phase_config, say=say)
    except ModuleNotFoundError as exc:
        _fail(f"training needs {exc.name}: pip install 'codesearch[train]' (or -e '.[train]' in a checkout)")
    except RuntimeError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(report.table() if report.before else "")
    click.echo(f"{'Kept' if report.kept else 'Not kept'}: {report.reason}")
    if report.steps:
        steps_per_second = report.steps / report.train_seconds if report.train_seconds else 0.0
        click.echo(f"Trained {report.steps} steps at {report.pairs_per_second} pairs/s "
                   f"({steps_per_second:.2f} steps/s, {report.train_seconds}s).")
    if report.reindex:
        click.echo(f"Index updated: {report.reindex['embedded']} chunks embedded again, {report.reindex['reused']} reused.")
    click.echo(f"Finished in {report.seconds:.1f}s.")
    click.echo(report.time_line())
    click.echo(f"Report: {report.run_dir}/report.json")


# ---------------------------------------------------------------------------- status and gc
@main.command()
@pass_ctx
def status(ctx: Context):
    """Show what the index holds."""
    try:
        store = ctx.store(create=False)
    except FileNotFoundError as exc:
        _fail(str(exc))
    meta = store.meta()
    click.echo(f"home:      {store.home}")
    if not store.has_index():
        click.echo("index:     empty")
        return
    n_chunks = store.count_chunks()
    click.echo(f"files:     {store.count_rows('files')}")
    click.echo(f"chunks:    {n_chunks}")
    click.echo(f"vectors:   {store.count_rows('vectors')} distinct chunk texts")
    size = store.disk_bytes()
    per_chunk = f" ({size / n_chunks / 1024:.1f} KB per chunk)" if n_chunks else ""
    click.echo(f"disk:      {size / 1e6:.1f} MB{per_chunk}")
    click.echo(f"model:     {meta.get('model_fingerprint')} (dim {meta.get('dim')})")


@main.command()
@pass_ctx
def gc(ctx: Context):
    """Drop cached vectors that no indexed chunk uses any more, and compact the tables."""
    from codesearch.indexer.store import is_disk_full

    store = ctx.store(create=False)
    try:
        with store.lock():
            n = store.gc()
            store.optimize()
    except (RuntimeError, OSError) as exc:
        if not is_disk_full(exc):
            raise
        _fail(str(store.disk_full()))
    click.echo(f"Removed {n} unused cached vectors.")


# ---------------------------------------------------------------------------- watch and doctor
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per update.")
@click.option("--debounce-ms", type=click.IntRange(0, 60_000), default=None,
              help="Apply a burst of changes once no event came for this long (default: the settings' watch.debounce_ms).")
@click.option("--no-initial", is_flag=True, help="Skip the initial catch-up pass over PATHS.")
@pass_ctx
def watch(ctx: Context, paths, as_json, debounce_ms, no_initial):
    """Keep the index of PATHS up to date while files change, until interrupted (Ctrl-C).

    Starts with an incremental pass (what changed while nothing was watching), then
    re-indexes each saved, created, deleted or renamed file within about a second; a
    changed ignore file re-checks its folder; a branch switch is batched. Idle, it uses no CPU.
    """
    import signal
    import threading

    from codesearch.indexer.store import IndexDamaged
    from codesearch.indexer.watch import STOP_TIMEOUT, Watcher

    if debounce_ms is not None:
        ctx.settings.setdefault("watch", {})["debounce_ms"] = debounce_ms
    try:
        store = ctx.store(create=True)
        damage = store.check_tables(full=False)  # as index does: never watch over a table it cannot read
    except (FileNotFoundError, ValueError, OSError) as exc:
        _fail(str(exc))
    if damage:
        _fail(str(IndexDamaged(damage)))
    damaged: list[str] = []

    def report(update) -> None:
        if update.damaged:  # a table cannot be read (mid-run): stop, say what to run
            damaged.append(update.error)
            stop.set()
            return
        if as_json:
            click.echo(json.dumps({"time": time.strftime("%H:%M:%S"), **update.as_dict()}), nl=True)
            sys.stdout.flush()
            return
        stamp = time.strftime("%H:%M:%S")
        if update.error:
            click.echo(f"{stamp} update failed ({update.error}); retrying", err=True)
            return
        s = update.summary
        what = "full pass" if update.full else f"{len(update.paths)} changed path(s)"
        latency = f", searchable {update.latency:.2f}s after the change" if update.latency is not None else ""
        click.echo(
            f"{stamp} {what}: {s.files_indexed} file(s) re-indexed, {s.files_removed} removed, "
            f"{s.embedded} chunk(s) embedded{latency}. Index total: {s.total_chunks} chunks."
        )

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        watcher = Watcher(store, ctx.loaded_index_encoder(), ctx.settings, paths,
                          on_update=report, initial_sync=not no_initial).start()
    except (FileNotFoundError, ValueError, OSError) as exc:
        _fail(str(exc))
    if not as_json:
        click.echo(f"Watching {', '.join(str(Path(p).absolute()) for p in paths)} (Ctrl-C to stop).", err=True)
    stop.wait()
    # Exit within a second of Ctrl-C: an update still running after 0.5 s (an embed) is
    # abandoned and the interpreter's teardown (model threads) skipped. Safe as kill -9 is:
    # each commit is atomic, the lock dies with the process, the next run redoes the rest.
    watcher.stop(timeout=STOP_TIMEOUT)
    if damaged:
        click.echo(f"codesearch: error: {damaged[0]}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2 if damaged else 0)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--fix", is_flag=True, help="Repair what is found by re-indexing exactly those files.")
@click.option("--deep", is_flag=True, help="Also re-cut every file into chunks to catch edits that kept the mtime.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_ctx
def doctor(ctx: Context, paths, fix, deep, as_json):
    """Compare the index with the files on disk: stale, missing and orphaned files and chunks.

    Checks PATHS (default: every folder indexed into this home). Exit status: 0 when the
    index matches the disk (after --fix: when the repair left nothing to fix), 1 when
    differences remain, 2 on errors and when a table is damaged (cannot be read in full).
    """
    from codesearch.indexer.store import DiskFull, IndexDamaged, IndexLocked
    from codesearch.indexer.doctor import diagnose, index_roots, repair

    try:
        store = ctx.store(create=False)
    except FileNotFoundError as exc:
        _fail(str(exc))
    roots = [str(Path(p).expanduser().absolute()) for p in paths] or index_roots(store)
    if not roots:
        _fail("this index records no indexed folders: give the PATHS to check")
    from codesearch.indexer.walk import walk_options
    from codesearch.timing import rate_phrase, time_line, timed

    walked = walk_options(ctx.settings)
    checking = {"check": 0.0}  # both diagnoses (every table read in full)
    with timed(checking, "check"):
        found = diagnose(store, roots, deep=deep, **walked)
    after, summary = found, None
    if fix and not found.ok:
        encoder = ctx.loaded_index_encoder()  # loading the model is no part of the repair's time (as for index)
        started = time.perf_counter()
        try:
            with _index_progress(as_json) as (progress, estimate):
                summary = repair(store, encoder, ctx.settings, found, progress=progress, on_estimate=estimate)
        except (IndexLocked, IndexDamaged, DiskFull) as exc:
            _fail(str(exc))
        repair_seconds = time.perf_counter() - started
        with timed(checking, "check"):
            after = diagnose(store, roots, deep=deep, **walked)
        stages = {**checking, **summary.stage_seconds}
        seconds = checking["check"] + repair_seconds
    if as_json:
        out = found.as_dict()
        if fix:
            out["fixed"] = summary.as_dict() if summary else None
            out["after"] = after.as_dict()
            if summary:
                out["seconds_by_stage"] = {k: round(v, 2) for k, v in stages.items()}
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"Checked {found.files_on_disk} files on disk against {found.files_indexed} indexed "
                   f"({found.chunks} chunks) under {', '.join(roots)}.")
        for table, error in found.broken.items():
            click.echo(f"  damaged table {table} (cannot be read in full): {error}")
        labels = {"stale": "changed since indexed", "missing": "on disk, not indexed",
                  "orphaned": "indexed, gone from disk or now excluded", "damaged": "chunk rows not matching the record",
                  "duplicate_ids": "chunk ids stored twice", "dangling": "chunks without vectors"}
        for kind, label in labels.items():
            items = getattr(found, kind)
            if items:
                click.echo(f"  {kind} ({label}): {len(items)}")
                for p in items[:5]:
                    click.echo(f"    {p}")
                if len(items) > 5:
                    click.echo(f"    ... and {len(items) - 5} more")
        if found.ok:
            click.echo("The index matches the disk.")
        elif fix:
            s = summary
            for table, (kept, before) in found.rebuilt.items():
                click.echo(f"Rebuilt table {table}: {kept} of {'?' if before is None else before} rows could be read and were kept.")
            click.echo(f"Repaired: {s.files_indexed} file(s) re-indexed, {s.files_removed} removed, "
                       f"{s.embedded} chunk(s) embedded{rate_phrase(s.embedded, repair_seconds, 'chunks')} in {seconds:.1f}s.")
            click.echo(time_line(stages, seconds))
            click.echo("The index matches the disk." if after.ok else f"Still {after.differences} difference(s).")
        else:
            click.echo(f"{found.differences} difference(s); run `codesearch doctor --fix` to repair them.")
    sys.exit(0 if after.ok else 2 if after.broken else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
