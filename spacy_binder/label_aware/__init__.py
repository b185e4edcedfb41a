"""`label_aware_ner`: token-level few-shot NER as the label-aware contrastive
paper's authors built it (Zhang & Zhuang 2024), and CONTaiNER (Das et al. 2022)
as its base method.

- model.py: the text encoder of binder_ner (windows, long tokens, prompt) and
  Gaussian heads over each word's first sub-word and each label's [CLS];
- loss.py: the context-context and context-label objectives;
- decode.py: nearest support token (O included), or nearest label, then IO runs;
- component.py: the pipeline component, its support set and its callback.
"""
