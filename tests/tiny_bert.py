"""A tiny random BERT with a small WordPiece vocabulary, built offline."""
import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = (
    "the a of in is and to was by with on for that as cells cell gene protein "
    "human t b il-2 nf-kb receptor expression activated promoter binding factor "
    "alpha beta kinase mrna dna rna line jurkat monocytes lymphocytes induced "
    "transcription site region level levels we found showed alice bob paris london "
    "acme corp lives works at visited city company"
).split()


def build_tiny_bert(path: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = specials + chars + ["##" + c for c in chars] + sorted(set(WORDS) - set(chars))
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
        # HF's default (0.02) maps every input to nearly the same [CLS] vector
        # (cosine > 0.999); binder_ner's frozen type encoder needs distinct ones.
        initializer_range=0.2,
    )
    BertModel(config).save_pretrained(str(path))
    return path
