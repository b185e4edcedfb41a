"""`python -m spacy_binder`: corpus conversion, distant labelling, K-shot sampling,
training configs, int8 quantization and corpus annotation."""
from pathlib import Path
from typing import List, Optional

import spacy
import srsly
import typer
from spacy.tokens import DocBin

from .annotate import ENGINES, annotate as annotate_corpus
from .annotate import FORMATS as OUTPUT_FORMATS
from .convert import FORMATS, SCHEMES, ConversionReport, convert_corpus, distant_corpus
from .defaults import ENCODER, MAX_STEPS
from .init_config import MAX_PASSES, default_max_steps, detect_mode, init_config
from .sampler import sample_support

app = typer.Typer(help="spacy-binder tools", no_args_is_help=True, add_completion=False)
SEPARATORS = {"whitespace": None, "tab": "\t", "space": " "}


def _finish(docs, report: ConversionReport, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs).to_disk(output)
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"wrote {len(docs)} docs to {output}")


@app.command()
def convert(
    format: str = typer.Argument(..., help=f"One of {', '.join(FORMATS)}"),
    input: Path = typer.Argument(..., exists=True, help="A file (a folder of .txt/.ann for brat)"),
    output: Path = typer.Argument(..., help="The .spacy file to write"),
    spans_key: str = typer.Option("sc", help="Key of the gold span group"),
    n_sents: int = typer.Option(1, help="Sentences per Doc (iob, jsonl)"),
    by_document: bool = typer.Option(False, help="One Doc per document (-DOCSTART- or doc_id) instead"),
    scheme: str = typer.Option("iob2", help=f"Tag scheme for iob: {', '.join(SCHEMES)}"),
    tag_column: int = typer.Option(-1, help="Column of the tag (iob); -1 is the last"),
    separator: str = typer.Option("whitespace", help=f"Column separator (iob): {', '.join(SEPARATORS)}"),
    label_map: List[str] = typer.Option([], help="Rename a label: OLD=NEW (repeatable)"),
    labels: List[str] = typer.Option([], help="Keep only these labels (repeatable)"),
    skip_bad: bool = typer.Option(False, help="Skip and count malformed input instead of failing"),
    repair: bool = typer.Option(False, help="iob: an I- tag that continues nothing starts a new mention (conlleval); every repair is listed"),
    lang: str = typer.Option("en", help="Language of the blank tokenizer"),
) -> None:
    """Convert an NER corpus to a .spacy file with gold spans, and report counts."""
    if separator not in SEPARATORS:
        raise typer.BadParameter(f"separator must be one of {list(SEPARATORS)}, got {separator!r}")
    try:
        docs, report = convert_corpus(
            format, input, lang=lang, spans_key=spans_key, n_sents=n_sents, by_document=by_document,
            scheme=scheme, tag_column=tag_column, separator=SEPARATORS[separator],
            label_map=label_map, labels=labels, skip_bad=skip_bad, repair=repair,
        )
    except ValueError as err:  # ConversionError included: names file and line
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    _finish(docs, report, output)


@app.command()
def distant(
    dictionary: Path = typer.Argument(..., exists=True, help="TYPE<TAB>surface form per line"),
    raw: Path = typer.Argument(..., exists=True, help="One token a line, blank lines between sentences"),
    output: Path = typer.Argument(..., help="The .spacy file to write"),
    spans_key: str = typer.Option("sc", help="Key of the span group"),
    n_sents: int = typer.Option(1, help="Sentences per Doc"),
    ignore_case: bool = typer.Option(False, help="Match case-insensitively (on lower-cased tokens)"),
    lang: str = typer.Option("en", help="Language of the vocabulary"),
) -> None:
    """Label raw text with a dictionary (longest match, no overlaps)."""
    try:
        docs, report = distant_corpus(
            dictionary, raw, lang=lang, spans_key=spans_key, n_sents=n_sents, ignore_case=ignore_case
        )
    except ValueError as err:  # ConversionError included: names file and line
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    _finish(docs, report, output)


@app.command()
def merge(
    output: Path = typer.Argument(..., help="The .spacy file to write"),
    inputs: List[Path] = typer.Argument(..., exists=True, dir_okay=False, help="The .spacy corpora to merge"),
    descriptions: List[Path] = typer.Option([], exists=True, dir_okay=False, help="JSONL of {\"label\", \"description\"} (repeatable; the first naming a label wins)"),
    types_output: Optional[Path] = typer.Option(None, help="Write the descriptions of the merged corpus's labels here (needs --descriptions)"),
    exclude_label: List[str] = typer.Option([], help="Leave this label and its mentions out everywhere (repeatable): a leave-one-out source"),
    silver: Optional[str] = typer.Option(None, help="A spaCy pipeline (package name or folder) whose entities of --silver-label are added"),
    silver_label: List[str] = typer.Option([], help="A label of --silver's ner to add as silver mentions (repeatable)"),
    phrases: Optional[str] = typer.Option(None, help="A spaCy pipeline with a parser whose noun chunks go to doc.spans['phrases'] (the type sampler's phrase types)"),
    limit: int = typer.Option(0, help="Docs read from each input, the first ones (0: all)"),
    spans_key: str = typer.Option("sc", help="Key of the gold span group"),
    lang: str = typer.Option("en", help="Language of the vocabulary"),
) -> None:
    """Merge corpora into one .spacy file whose Docs each keep the labels their
    corpus annotates (binder_ner's loss and scorer leave the others out there)."""
    from .convert.merge import add_phrases, add_silver, corpus_labels, merge_corpora, merge_descriptions

    if types_output is not None and not descriptions:
        raise typer.BadParameter("--types-output writes descriptions read from --descriptions: give at least one file.")
    if bool(silver) != bool(silver_label):
        raise typer.BadParameter("Silver labels need both --silver PIPELINE and at least one --silver-label.")
    try:
        docs, report = merge_corpora(inputs, spacy.blank(lang).vocab, spans_key=spans_key, exclude=exclude_label, limit=limit)
        if silver:
            typer.echo(f"silver labels {', '.join(silver_label)} from {silver} over {len(docs)} docs...")
            report.silver = add_silver(docs, spacy.load(silver), silver_label, spans_key=spans_key)
        if phrases:
            typer.echo(f"noun phrases from {phrases}: {add_phrases(docs, spacy.load(phrases))}")
        types = merge_descriptions(descriptions, corpus_labels(docs, spans_key), report) if descriptions else None
    except (ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs).to_disk(output)
    if types_output is not None:
        srsly.write_jsonl(types_output, [{"label": label, "description": text} for label, text in sorted(types.items())])
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"wrote {len(docs)} docs to {output}" + (f" and {len(types)} types to {types_output}" if types_output else ""))


@app.command("fewshot-sample")
def fewshot_sample(
    input: Path = typer.Argument(..., exists=True, dir_okay=False, help="The .spacy pool to sample from (a dev split)"),
    output: Path = typer.Argument(..., help="The .spacy support set to write"),
    k: int = typer.Option(5, "--k", help="Mentions wanted per type"),
    seed: int = typer.Option(1, help="Random seed: one support set per seed"),
    spans_key: str = typer.Option("sc", help="Key of the gold span group"),
    lang: str = typer.Option("en", help="Language of the vocabulary"),
) -> None:
    """Draw a K-shot support set with the greedy sampler (rarest type first)."""
    vocab = spacy.blank(lang).vocab
    docs = list(DocBin().from_disk(input).get_docs(vocab))
    try:
        support, report = sample_support(docs, k, seed, spans_key)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=support, store_user_data=True).to_disk(output)
    for line in report.lines(len(support)):
        typer.echo(line)
    typer.echo(f"wrote {len(support)} docs to {output}")


@app.command("init-config")
def init_config_command(
    output: Path = typer.Argument(..., help="The training config to write"),
    mode: str = typer.Option("auto", help="flat, nested, or auto: nested when gold spans of --train overlap"),
    train: Optional[Path] = typer.Option(None, exists=True, help="The training .spacy file (paths.train; read by --mode auto)"),
    dev: Optional[Path] = typer.Option(None, exists=True, help="The dev .spacy file (paths.dev)"),
    descriptions: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help='JSONL of {"label", "description"} (paths.descriptions)'),
    labels: str = typer.Option("", help="Comma-separated labels (default: those of the data and the descriptions)"),
    encoder: str = typer.Option(ENCODER, help="Hugging Face encoder name or local folder (paths.encoder)"),
    max_steps: int = typer.Option(0, help=f"Training steps; 0: {MAX_STEPS}, or {MAX_PASSES} passes over a smaller --train"),
    spans_key: str = typer.Option("sc", help="Key of the gold span group"),
    lang: str = typer.Option("en", help="Language of the vocabulary"),
    transfer: bool = typer.Option(False, help="Train a source for zero- and few-shot use: sampled label subsets, label names and mention types, frozen type encoder"),
    prompt: bool = typer.Option(False, help="Label-aware suffix prompts: the text encoder reads every type's description after the text"),
    objectives: Optional[str] = typer.Option(None, help="Add the context-context and context-label objectives with this similarity: cosine, js or kl (needs --prompt)"),
) -> None:
    """Write a complete binder_ner training config: `spacy train OUTPUT` then trains."""
    docs = list(DocBin().from_disk(train).get_docs(spacy.blank(lang).vocab)) if train else []
    try:
        if mode == "auto":
            if train is None:
                raise ValueError("--mode auto reads the training data: give --train FILE, or --mode flat or nested.")
            mode = detect_mode(docs, spans_key)
            typer.echo(f"mode {mode}: gold spans {'overlap' if mode == 'nested' else 'never overlap'} in {train}")
        if max_steps == 0:
            n_words = sum(len(doc) for doc in docs)
            max_steps = default_max_steps(n_words) if train else MAX_STEPS
            typer.echo(f"max_steps {max_steps}" + (f" for the {n_words} words of {train}" if train else ""))
        wanted = [label.strip() for label in labels.split(",") if label.strip()]
        config = init_config(
            mode, max_steps=max_steps, encoder=encoder, descriptions=descriptions, labels=wanted,
            spans_key=spans_key, transfer=transfer, prompt=prompt, objectives=objectives,
        )
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    config["nlp"]["lang"] = lang
    config["paths"]["train"] = str(train) if train is not None else None
    config["paths"]["dev"] = str(dev) if dev is not None else None
    output.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(output)
    missing = "".join(f" --paths.{name} {name.upper()}" for name, path in (("train", train), ("dev", dev)) if path is None)
    typer.echo(f"wrote {output}: spacy train {output}{missing}")


@app.command()
def quantize(
    pipeline: Path = typer.Argument(..., exists=True, file_okay=False, help="A trained pipeline folder"),
    output: Path = typer.Argument(..., help="The folder of the int8 pipeline to write"),
    ahead: bool = typer.Option(True, "--compile/--no-compile", help="Compile the encoder now, for this machine's CPU, so that processes loading the pipeline predict at once (else each compiles it before its first batch)"),
) -> None:
    """Write a copy of a trained pipeline whose binder_ner text encoders run int8
    on CPU (spacy.load, to_disk and spacy package as usual; it cannot be trained)."""
    from .encoders import hf_objects  # torch and transformers: only for this command
    from .quantize import quantize_overrides

    try:
        overrides = quantize_overrides(spacy.util.load_config(pipeline / "config.cfg"))
        nlp = spacy.load(pipeline, config=overrides)
    except (ValueError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    for name in [key.split(".")[1] for key in overrides] if ahead else []:
        typer.echo(f"compiling {name}'s int8 text encoder for this CPU (a minute or two)...")
        hf_objects(nlp.get_pipe(name).model.get_ref("text_encoder")).transformer.compile_ahead()
    nlp.to_disk(output)
    typer.echo(f"wrote {output}: {', '.join(overrides)} = int8")


@app.command()
def annotate(
    model: str = typer.Argument(..., help="A pipeline folder or an installed package name"),
    input: Path = typer.Argument(..., exists=True, help="A JSONL or Parquet file, or a folder of them"),
    output_dir: Path = typer.Argument(..., help="Where part-NNNNN files, errors and the manifest go"),
    engine: str = typer.Option("local", help=f"One of {', '.join(ENGINES)}"),
    workers: int = typer.Option(1, help="Processes (local) or actors (ray), each loading the pipeline once"),
    batch_size: int = typer.Option(64, help="Documents per nlp.pipe batch"),
    text_key: str = typer.Option("text", help="Field (JSONL) or column (Parquet) of the text"),
    id_key: str = typer.Option("id", help="Field of the document id (default: FILE:LINE)"),
    shard_docs: int = typer.Option(1000, help="Documents per shard: the unit of output and of resuming"),
    output_format: str = typer.Option("jsonl", "--format", help=f"One of {', '.join(OUTPUT_FORMATS)}"),
    write_text: bool = typer.Option(False, help="Also write each document's text"),
    threads_per_worker: Optional[int] = typer.Option(None, help="torch threads (and, for ray, CPUs) per worker"),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs per worker"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)"),
    wheel: Optional[Path] = typer.Option(None, help="The wheel (`spacy package`) of MODEL, installed on the Ray workers"),
) -> None:
    """Annotate a corpus: one output part per input shard, resumable, local or on Ray."""
    try:
        manifest = annotate_corpus(
            model, input, output_dir, engine=engine, workers=workers, batch_size=batch_size,
            text_key=text_key, id_key=id_key, shard_docs=shard_docs, output_format=output_format,
            write_text=write_text, threads_per_worker=threads_per_worker, gpus_per_worker=gpus_per_worker,
            address=address, wheel=wheel,
        )
    except (ValueError, ImportError, RuntimeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    counts = manifest["counts"]
    typer.echo(
        f"{counts['docs']} documents: {counts['annotated']} annotated, {counts['errors']} errors "
        f"({manifest['shards_skipped']} of {len(manifest['input']['shards'])} shards were already done) -> {output_dir}"
    )
