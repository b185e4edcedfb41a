"""init-config: the mode from the data, steps from its size, settings checked early."""
import pytest
import spacy
from spacy.tokens import Span
from spacy.util import registry

from util import DESCRIPTIONS, NESTED_DATA, make_examples
from spacy_binder.init_config import default_max_steps, detect_mode, init_config


def test_mode_is_read_from_the_gold_spans():
    nlp = spacy.blank("en")
    docs = [eg.reference for eg in make_examples(nlp)]
    assert detect_mode(docs) == "nested"
    for doc in docs:
        doc.spans["sc"] = [s for s in doc.spans["sc"] if s.label_ == "CELL"]
    assert detect_mode(docs) == "flat"
    ents = nlp.make_doc(NESTED_DATA[0][0])
    ents.ents = [Span(ents, 6, 9, "CELL")]
    assert detect_mode([ents]) == "flat"
    with pytest.raises(ValueError, match=r"No gold spans in doc.spans\['other'\] or doc.ents of 1 docs"):
        detect_mode([nlp.make_doc("no entities here")], "other")


def test_steps_follow_the_corpus_size():
    assert default_max_steps(200_000) == 400  # the validated budget
    assert default_max_steps(2452) == 154  # 25 passes over the demo corpus
    assert default_max_steps(1) == 1


def test_filled_config_has_each_default_once(tmp_path):
    types = tmp_path / "types.jsonl"
    types.write_text("\n".join(f'{{"label": "{k}", "description": "{v}"}}' for k, v in DESCRIPTIONS.items()))
    flat = init_config("flat", descriptions=types, labels=["CELL"], max_steps=200)
    component = flat["components"]["binder_ner"]
    assert component["mode"] == "flat" and component["threshold"] == 0.5
    assert component["model"]["heads_learn_rate_scale"] == 10.0  # filled from the model function
    assert component["loss"]["mention_weight"] == 0.5  # filled from BinderLoss
    assert flat["training"]["score_weights"]["ents_f"] == 1.0
    assert flat["training"]["max_steps"] == 200 and flat["training"]["eval_frequency"] == 50
    assert flat["training"]["optimizer"]["learn_rate"]["warmup_steps"] == 25
    assert init_config("flat")["training"]["optimizer"]["learn_rate"]["warmup_steps"] == 50  # as validated
    assert flat["initialize"]["components"]["binder_ner"]["labels"] == ["CELL"]
    nested = init_config("nested")
    assert nested["training"]["score_weights"]["spans_sc_f"] == 1.0
    with pytest.raises(ValueError, match=r"Labels \['GENE'\] have no description"):
        init_config("flat", descriptions=types, labels=["GENE"])
    with pytest.raises(ValueError, match="Unknown binder_ner mode 'both'"):
        init_config("both")


def test_warm_up_longer_than_the_run_is_refused():
    config = init_config("nested", max_steps=150)
    config["training"]["optimizer"]["learn_rate"]["warmup_steps"] = 200
    with pytest.raises(ValueError, match=r"warmup_steps=200 must lie in \[0, total_steps=150\].*e.g. to 18"):
        registry.resolve(config.interpolate()["training"])
    schedule = registry.schedules.get("spacy_binder.warmup_linear.v1")
    with pytest.raises(ValueError, match="needs total_steps >= 1, got 0"):
        schedule(1e-4, 0, 0)
    rates = list(zip(range(5), schedule(1.0, 2, 4)))
    assert [rate for _, rate in rates] == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_transfer_prompt_and_objectives_options():
    plain = init_config("flat")["components"]["binder_ner"]
    assert plain["model"]["text_encoder"]["prompt"] is None and plain["loss"]["context_weight"] == 0.0
    config = init_config("flat", transfer=True, prompt=True, objectives="js")
    component = config["components"]["binder_ner"]
    assert component["type_sampler"]["keep_prob"] == 0.5 and component["type_sampler"]["n_mention_types"] == 8
    assert component["model"]["type_encoder_learn_rate_scale"] == 0.0
    assert component["model"]["text_encoder"]["prompt"]["template"] == "{description}"
    assert component["model"]["gaussian_embeddings"] is True
    assert (component["loss"]["context_weight"], component["loss"]["label_weight"], component["loss"]["similarity"]) == (0.5, 0.5, "js")
    cosine = init_config("nested", prompt=True, objectives="cosine")["components"]["binder_ner"]
    assert cosine["model"]["gaussian_embeddings"] is False
    with pytest.raises(ValueError, match="needs the label prompt"):
        init_config("flat", objectives="cosine")
    with pytest.raises(ValueError, match="Unknown objectives similarity 'l2'"):
        init_config("flat", prompt=True, objectives="l2")
