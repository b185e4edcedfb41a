import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import DocBin, Span
from spacy.util import registry

from util import DESCRIPTIONS, NESTED_DATA, described_nlp, make_examples, make_nlp, overfit_nested, predicted, train
from spacy_binder.defaults import NEW_TYPE_THRESHOLD
from spacy_binder.errors import BinderWarning
from spacy_binder.transfer import TypeSampler

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LABELS = ["A", "B", "C", "D"]
TEXTS = ["a thing", "b thing", "c thing", "d thing"]


def test_type_sampler_subsets_names_mentions_and_negatives():
    sampler = TypeSampler(keep_prob=0.5, n_mention_types=2, negatives=["n1", "n2", "n3"], n_negatives=2, seed=1)
    seen = set()
    for _ in range(200):
        types = sampler(LABELS, TEXTS, mentions=["paris", "paris", "acme corp", " "])
        kept = [key[1] for key, _ in types if key and key[0] == "label"]
        assert kept and len(set(kept)) == len(kept)  # never empty, no repeats
        assert all(text == TEXTS[LABELS.index(key[1])] for key, text in types if key and key[0] == "label")
        # both distinct (lower-cased, non-blank) mention texts, each its own type
        assert sorted((key, text) for key, text in types if key and key[0] == "text") == [
            (("text", "acme corp"), "acme corp"), (("text", "paris"), "paris")]
        assert sorted(t for key, t in types if key is None) in (["n1", "n2"], ["n1", "n3"], ["n2", "n3"])
        seen.add(tuple(sorted(kept)))
    assert len(seen) > 8  # many different subsets
    names = TypeSampler(name_prob=1.0)(LABELS, TEXTS)
    assert names == [(("label", label), label) for label in LABELS]
    assert TypeSampler()(LABELS, TEXTS) == [(("label", label), text) for label, text in zip(LABELS, TEXTS)]
    draws = lambda: [TypeSampler(keep_prob=0.5, seed=7)(LABELS, TEXTS) for _ in range(3)]
    assert draws() == draws()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"keep_prob": 0.0}, "keep_prob must lie in \\(0, 1\\], got 0.0"),
        ({"name_prob": 1.5}, "name_prob must lie in \\[0, 1\\], got 1.5"),
        ({"n_negatives": 2}, "n_negatives=2, but 0 negative descriptions"),
        ({"n_mention_types": -1}, "n_mention_types must be >= 0, got -1"),
    ],
)
def test_type_sampler_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        registry.misc.get("spacy_binder.TypeSampler.v1")(**kwargs)


def test_training_with_sampled_types_still_learns(tiny_bert, tmp_path):
    negatives = tmp_path / "negatives.jsonl"
    negatives.write_text('{"label": "N1", "description": "a musical instrument"}\n'
                         '{"label": "N2", "description": "a species of bird"}\n')
    sampler = {"@misc": "spacy_binder.TypeSampler.v1", "keep_prob": 0.7, "name_prob": 0.2,
               "n_mention_types": 2, "negatives": str(negatives), "n_negatives": 1}
    nlp = overfit_nested(tiny_bert, steps=400, type_sampler=sampler)
    ner = nlp.get_pipe("binder_ner")
    assert ner.labels == tuple(DESCRIPTIONS)  # sampling never changes the label set
    assert nlp.evaluate(make_examples(nlp))["spans_sc_f"] >= 0.9


def test_set_labels_replaces_the_label_set(nested_copy):
    nlp = nested_copy  # trained_nested's model, labels replaced here
    ner = nlp.get_pipe("binder_ner")
    ner.set_labels({"CELL": DESCRIPTIONS["CELL"], "GENE": None})
    assert ner.labels == ("CELL", "GENE") and ner.descriptions == [DESCRIPTIONS["CELL"], "GENE"]
    found = predicted(nlp(NESTED_DATA[0][0]))
    assert {label for *_, label in found} <= {"CELL", "GENE"}
    assert (6, 9, "CELL") in found
    ner.set_mode("flat")
    assert nlp(NESTED_DATA[0][0]).ents
    with pytest.raises(ValueError, match="Unknown binder_ner mode 'both'"):
        ner.set_mode("both")
    with pytest.raises(ValueError, match="set_labels needs at least one label"):
        ner.set_labels({})


def test_fewshot_config_fine_tunes_a_sourced_pipeline(tiny_bert, tmp_path):
    """spacy train with binder_fewshot.cfg: new types, fixed steps, optional source types kept."""
    source = make_nlp(tiny_bert, mode="flat")
    ner = source.get_pipe("binder_ner")
    ner.add_label("CELL", description=DESCRIPTIONS["CELL"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        train(source, make_examples(source, [(t, [s for s in spans if s[2] == "CELL"]) for t, spans in NESTED_DATA]), steps=30)
    source.to_disk(tmp_path / "source")
    support = [eg.reference for eg in make_examples(source)]
    for doc in support:
        doc.spans["sc"] = [s for s in doc.spans["sc"] if s.label_ in ("PROTEIN", "DNA")]
    DocBin(docs=support).to_disk(tmp_path / "support.spacy")
    types = tmp_path / "types.jsonl"
    types.write_text("\n".join(json.dumps({"label": k, "description": DESCRIPTIONS[k]}) for k in ("PROTEIN", "DNA")))
    for keep, labels in ((False, ("PROTEIN", "DNA")), (True, ("CELL", "PROTEIN", "DNA"))):
        output = tmp_path / f"fewshot_{keep}"
        cmd = [
            sys.executable, "-m", "spacy", "train", str(CONFIGS / "binder_fewshot.cfg"),
            "--paths.source", str(tmp_path / "source"), "--paths.train", str(tmp_path / "support.spacy"),
            "--paths.descriptions", str(types), "--output", str(output),
            "--training.max_steps", "150", "--training.eval_frequency", "150",
            "--training.optimizer.learn_rate", "0.001",
            "--initialize.before_init.mode", "nested",
            "--initialize.before_init.keep_existing", str(keep).lower(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        nlp = spacy.load(output / "model-last")
        tuned = nlp.get_pipe("binder_ner")
        assert tuned.labels == labels and tuned.cfg["mode"] == "nested"
        assert [doc.text for doc in tuned.support] == [doc.text for doc in support]  # kept as its support set
        # It predicts by the descriptions, its new types down to the new-type threshold (saved in its config).
        new_types = {"PROTEIN": NEW_TYPE_THRESHOLD, "DNA": NEW_TYPE_THRESHOLD}
        assert tuned.support_weight == 0.0 and tuned.threshold == {**({"CELL": 0.5} if keep else {}), **new_types}
        assert nlp.config["components"]["binder_ner"]["threshold"] == tuned.threshold
        examples = make_examples(nlp, [(t, [s for s in spans if s[2] in ("PROTEIN", "DNA")]) for t, spans in NESTED_DATA])
        assert nlp.evaluate(examples)["spans_sc_f"] >= 0.8  # it learned the support set's types


def test_set_labels_callback(tiny_bert, tmp_path):
    types = tmp_path / "types.jsonl"
    types.write_text('{"label": "GENE", "description": "a gene"}\n')
    sampler = {"@misc": "spacy_binder.TypeSampler.v1", "keep_prob": 0.5}
    nlp = make_nlp(tiny_bert, type_sampler=sampler)
    ner = nlp.get_pipe("binder_ner")
    ner.add_label("CELL", description=DESCRIPTIONS["CELL"])
    set_labels = registry.callbacks.get("spacy_binder.set_labels.v1")
    set_labels(str(types), keep_existing=True, keep_type_sampler=True)(nlp)
    assert ner.labels == ("CELL", "GENE") and ner.descriptions == [DESCRIPTIONS["CELL"], "a gene"]
    assert ner.cfg["sample_types"] and ner.support == []
    support = tmp_path / "support.spacy"
    gene = nlp.make_doc("the gene was found")
    gene.spans["sc"] = [Span(gene, 1, 2, "GENE")]
    DocBin(docs=[gene]).to_disk(support)
    for _ in range(2):  # replaces, never appends
        set_labels(str(types), support=str(support))(nlp)
        assert [doc.text for doc in ner.support] == ["the gene was found"]
    set_labels(str(types), mode="flat")(nlp)
    assert ner.labels == ("GENE",) and ner.cfg["mode"] == "flat" and not ner.cfg["sample_types"]
    step = ner._step_types(make_examples(nlp))
    assert step.texts == ["a gene"] and step.prompted == [True]  # the sampler is off
    fresh = make_nlp(tiny_bert, type_sampler=sampler).get_pipe("binder_ner")
    fresh.from_bytes(ner.to_bytes(exclude=["model"]), exclude=["model"])
    assert fresh.cfg["sample_types"] is False and fresh.labels == ("GENE",)  # saved with the pipeline
    with pytest.raises(ValueError, match="labels must be non-empty strings"):
        ner.set_labels({"CELL": None, "": None})
    assert ner.labels == ("GENE",)  # a bad label set leaves the old one
    ner.add_label("CELL", description=DESCRIPTIONS["CELL"])
    ner.threshold = 0.6
    assert ner.support and ner.support_weight == 1.0
    set_labels(str(types), keep_existing=True, threshold=0.1, support_weight=0.0)(nlp)
    assert ner.threshold == {"GENE": 0.1, "CELL": 0.6} and ner.support_weight == 0.0  # the kept type keeps its own
    assert nlp.config["components"]["binder_ner"]["support_weight"] == 0.0  # what the saved pipeline loads with
    with pytest.raises(ValueError, match="threshold must lie in \\(0, 1\\], got 0.0"):
        set_labels(str(types), threshold=0.0)
    with pytest.raises(ValueError, match="support_weight must be in \\[0, 1\\].*got 2"):
        set_labels(str(types), support_weight=2)
    with pytest.raises(ValueError, match=r"threshold is below 0.5 for \['GENE'\].*support_weight 0"):
        set_labels(str(types), support=str(support), threshold=0.1, support_weight=1.0)(nlp)


def test_set_loss_callback_sets_the_training_loss(tiny_bert):
    """A sourced component keeps its loss settings; the after_init callback replaces them."""
    nlp = described_nlp(tiny_bert)
    ner = nlp.get_pipe("binder_ner")
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    scores = ner.predict([eg.predicted for eg in examples])
    losses = {}
    for weight in (0.0, 1.0):
        loss = registry.misc.get("spacy_binder.BinderLoss.v1")(mention_weight=weight)
        registry.callbacks.get("spacy_binder.set_loss.v1")(loss)(nlp)
        assert ner.loss is loss
        losses[weight] = ner.get_loss(examples, scores)[0]
    thresholds_only, mentions_only = losses[0.0], losses[1.0]
    assert thresholds_only > 0 and mentions_only > 0 and thresholds_only != pytest.approx(mentions_only)


def test_frozen_type_encoder_is_not_updated(tiny_bert):
    nlp = described_nlp(tiny_bert, {"type_encoder_learn_rate_scale": 0.0})
    ner = nlp.get_pipe("binder_ner")
    examples = make_examples(nlp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        optimizer = nlp.initialize(lambda: examples)
    text_encoder, type_encoder = ner.model.get_ref("text_encoder"), ner.model.get_ref("type_encoder")
    weights = lambda layer: [p.detach().clone() for p in layer.get_ref("transformer").shims[0]._model.parameters()]
    text_before, type_before = weights(text_encoder), weights(type_encoder)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    assert all(torch.equal(a, b) for a, b in zip(type_before, weights(type_encoder)))
    assert not all(torch.equal(a, b) for a, b in zip(text_before, weights(text_encoder)))
    with pytest.raises(ValueError, match="type_encoder_learn_rate_scale must be >= 0"):
        make_nlp(tiny_bert, {"type_encoder_learn_rate_scale": -1.0})
