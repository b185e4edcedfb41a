"""Tiny random encoders with a small WordPiece vocabulary, built offline: a BERT
(the default encoder's shape) and an MPNet (all-mpnet-base-v2's: <s>/</s> special
tokens, pair format <s> A </s></s> B </s>, no token_type_ids)."""
import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel, MPNetTokenizerFast

WORDS = (
    "the a of in is and to was by with on for that as cells cell gene protein "
    "human t b il-2 nf-kb receptor expression activated promoter binding factor "
    "alpha beta kinase mrna dna rna line jurkat monocytes lymphocytes induced "
    "transcription site region level levels we found showed alice bob paris london "
    "acme corp lives works at visited city company"
).split()


def _build(path: Path, specials: list, tokenizer_cls, config_cls, model_cls, hidden_size: int, seed: int, **config) -> Path:
    """A 2-layer random encoder of `hidden_size` with the small vocabulary after `specials`."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = specials + chars + ["##" + c for c in chars] + sorted(set(WORDS) - set(chars))
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = tokenizer_cls(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    model_cls(
        config_cls(
            vocab_size=len(vocab),
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=hidden_size * 2,
            # HF's default (0.02) maps every input to nearly the same [CLS] vector
            # (cosine > 0.999); binder_ner's frozen type encoder needs distinct ones.
            initializer_range=0.2,
            **config,
        )
    ).save_pretrained(str(path))
    return path


def build_tiny_bert(path: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return _build(path, specials, BertTokenizerFast, BertConfig, BertModel, hidden_size, seed, max_position_embeddings=512)


def build_tiny_mpnet(path: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """all-mpnet-base-v2's layout (special tokens first, pad id 1, 514 positions)."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]
    return _build(
        path, specials, MPNetTokenizerFast, MPNetConfig, MPNetModel, hidden_size, seed,
        max_position_embeddings=514,
        pad_token_id=1,
        # all-mpnet-base-v2's; HF's default 1e-12 is written as 0.0 by the JSON
        # spacy-transformers saves configs with, and the zero padding rows of MPNet's
        # embeddings then normalize to NaN
        layer_norm_eps=1e-5,
    )
