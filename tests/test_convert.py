import subprocess
import sys

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab

from spacy_binder.convert import ConversionError, convert_corpus, distant_corpus, tags_to_mentions

IOB2_TSV = """-DOCSTART-\tO

Alice\tB-PER
Smith\tI-PER
joined\tO
Acme\tB-ORG
.\tO

She\tO
left\tO
Paris\tB-LOC
.\tO
-DOCSTART-\tO

Bob\tB-PER
stayed\tO
"""


def spans_of(doc, key="sc"):
    return [(s.start, s.end, s.label_) for s in doc.spans[key]]


@pytest.mark.parametrize(
    "scheme,tags,expected",
    [
        ("iob2", ["B-A", "I-A", "O", "B-A", "B-A"], [(0, 2, "A"), (3, 4, "A"), (4, 5, "A")]),
        ("iob1", ["I-A", "I-A", "B-A", "O", "I-B"], [(0, 2, "A"), (2, 3, "A"), (4, 5, "B")]),
        ("iobes", ["B-A", "I-A", "E-A", "S-B", "O"], [(0, 3, "A"), (3, 4, "B")]),
        ("bilou", ["U-A", "B-B", "L-B", "O"], [(0, 1, "A"), (1, 3, "B")]),
    ],
)
def test_tag_schemes(scheme, tags, expected):
    assert tags_to_mentions(tags, scheme) == expected


@pytest.mark.parametrize(
    "scheme,tags,index",
    [
        ("iob2", ["O", "I-A"], 1),
        ("iob2", ["B-A", "I-B"], 1),
        ("iobes", ["B-A", "O"], 1),
        ("iobes", ["B-A", "I-A"], 1),
        ("iob2", ["B-A", "X-A"], 1),
        ("iob2", ["PER"], 0),
    ],
)
def test_invalid_tag_sequences(scheme, tags, index):
    with pytest.raises(ValueError) as err:
        tags_to_mentions(tags, scheme)
    assert err.value.args[0][0] == index


@pytest.mark.parametrize(
    "scheme,tags,expected,n_repairs",
    [
        ("iob2", ["O", "I-A", "I-A"], [(1, 3, "A")], 1),
        ("iob2", ["B-A", "I-B", "O"], [(0, 1, "A"), (1, 2, "B")], 1),
        ("iob2", ["I-A", "O", "I-A"], [(0, 1, "A"), (2, 3, "A")], 2),
        ("iobes", ["B-A", "O", "E-B"], [(0, 1, "A"), (2, 3, "B")], 2),
        ("iobes", ["S-A", "I-A", "E-A"], [(0, 1, "A"), (1, 3, "A")], 1),
        ("bilou", ["B-A", "I-A"], [(0, 2, "A")], 1),
        ("iob2", ["B-A", "I-A", "O"], [(0, 2, "A")], 0),
        ("iob1", ["I-A", "I-B", "B-B"], [(0, 1, "A"), (1, 2, "B"), (2, 3, "B")], 0),
        ("iobes", ["B-A", "E-B"], [(0, 1, "A"), (1, 2, "B")], 2),
    ],
)
def test_repair_reads_broken_sequences_the_conlleval_way(scheme, tags, expected, n_repairs):
    repairs = []
    assert tags_to_mentions(tags, scheme, repairs) == expected
    assert len(repairs) == n_repairs
    if n_repairs:
        with pytest.raises(ValueError):  # without repair the same sequence is an error
            tags_to_mentions(tags, scheme)


def test_repair_option_lists_every_repair_and_strips_invisible_line_starts(tmp_path):
    path = tmp_path / "broken.tsv"
    path.write_text("\ufeff-DOCSTART-\tO\n\n\ufeffa\tO\nb\tI-X\n\n\u200bc\tB-Y\nd\tI-Z\n", encoding="utf8")
    with pytest.raises(ConversionError, match="line 4: 'I-X' does not continue"):
        convert_corpus("iob", path, separator="\t")
    docs, report = convert_corpus("iob", path, separator="\t", repair=True)
    assert [spans_of(doc) for doc in docs] == [[(1, 2, "X")], [(0, 1, "Y"), (1, 2, "Z")]]
    assert [[t.text for t in doc] for doc in docs] == [["a", "b"], ["c", "d"]]
    assert len(report.repaired) == 2 and "line 4" in report.repaired[0] and "line 7" in report.repaired[1]
    assert report.invisible_stripped == 3 and report.documents_read == 1
    lines = "\n".join(report.lines())
    assert "tag sequences repaired (--repair): 2" in lines and "zero-width character stripped at the start: 3" in lines
    assert sum(report.mentions_written.values()) == 3  # no mention dropped
    word = tmp_path / "zero_width_word.tsv"
    word.write_text("a\tO\n\u200b\tO\nb\tB-X\n", encoding="utf8")
    docs, report = convert_corpus("iob", word, separator="\t")
    assert [t.text for t in docs[0]] == ["a", "\u200b", "b"] and report.invisible_stripped == 0


def test_iob_file_counts_documents_and_groups(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text(IOB2_TSV)
    docs, report = convert_corpus("iob", path, separator="\t")
    assert len(docs) == 3 and report.sentences_read == 3 and report.documents_read == 2
    assert spans_of(docs[0]) == [(0, 2, "PER"), (3, 4, "ORG")]
    assert [(e.start, e.end, e.label_) for e in docs[0].ents] == spans_of(docs[0])
    assert dict(report.mentions_written) == {"PER": 2, "ORG": 1, "LOC": 1}
    docs, _ = convert_corpus("iob", path, separator="\t", by_document=True)
    assert [len(list(doc.sents)) for doc in docs] == [2, 1]
    assert spans_of(docs[0])[-1] == (7, 8, "LOC")
    docs, _ = convert_corpus("iob", path, separator="\t", n_sents=2)
    assert len(docs) == 2


def test_conll_columns_and_label_filter(tmp_path):
    path = tmp_path / "conll.txt"
    path.write_text("Alice NNP B-NP B-PER\nvisited VBD B-VP O\nRome NNP B-NP B-LOC\n\n")
    docs, report = convert_corpus("iob", path, label_map=["PER=person"], labels=["person"])
    assert spans_of(docs[0]) == [(0, 1, "person")]
    assert report.filtered["LOC"] == 1
    assert any("LOC: 1 left out" in line for line in report.lines())


def test_bad_tag_sequence_names_file_and_line_or_is_skipped(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\tO\nb\tI-X\n\nc\tB-Y\n")
    with pytest.raises(ConversionError, match=r"bad.tsv, line 2: 'I-X' does not continue"):
        convert_corpus("iob", path, separator="\t")
    docs, report = convert_corpus("iob", path, separator="\t", skip_bad=True)
    assert len(docs) == 1 and len(report.skipped_bad) == 1
    assert "line 2" in report.skipped_bad[0]


def test_wrong_column_count(tmp_path):
    path = tmp_path / "cols.txt"
    path.write_text("a NN O\nb O\n")
    with pytest.raises(ConversionError, match=r"cols.txt, line 2: expected 3 columns, got 2"):
        convert_corpus("iob", path)


def test_nested_jsonl(tmp_path):
    path = tmp_path / "nested.jsonl"
    path.write_text(
        '{"tokens": ["the", "il-2", "gene"], "doc_id": "d1", "entity_mentions": '
        '[{"start": 1, "end": 3, "entity_type": "DNA"}, {"start": 1, "end": 2, "entity_type": "protein"}]}\n'
        '{"tokens": ["b", "cells"], "doc_id": "d1", "entity_mentions": [{"start": 0, "end": 5, "entity_type": "cell"}]}\n'
        '{"tokens": ["x"], "doc_id": "d2", "entity_mentions": []}\n'
    )
    docs, report = convert_corpus("jsonl", path)
    assert spans_of(docs[0]) == [(1, 2, "protein"), (1, 3, "DNA")]
    assert len(docs[0].ents) == 0  # overlapping mentions: no doc.ents
    assert report.documents_read == 2 and report.sentences_read == 3
    assert report.mentions_read["cell"] == 1 and report.mentions_written["cell"] == 0
    assert "token offsets 0-5 outside the sentence" in report.unplaced[0]
    docs, _ = convert_corpus("jsonl", path, by_document=True)
    assert len(docs) == 2


def test_broken_json_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"tokens": ["a"], "entity_mentions": []}\n{"tokens": ["b"\n')
    with pytest.raises(ConversionError, match="broken.jsonl, line 2"):
        convert_corpus("jsonl", path)
    docs, report = convert_corpus("jsonl", path, skip_bad=True)
    assert len(docs) == 1 and len(report.skipped_bad) == 1


def test_char_offset_jsonl_reports_misaligned_mentions(tmp_path):
    path = tmp_path / "chars.jsonl"
    path.write_text(
        '{"text": "Dr. Ada Lovelace met Babbage.", "entity_mentions": ['
        '{"start": 4, "end": 16, "entity_type": "PER"}, {"start": 21, "end": 28, "entity_type": "PER"},'
        '{"start": 5, "end": 9, "entity_type": "PER"}, {"start": 40, "end": 45, "entity_type": "PER"}]}\n'
    )
    docs, report = convert_corpus("jsonl-chars", path)
    assert [s.text for s in docs[0].spans["sc"]] == ["Ada Lovelace", "Babbage"]
    assert len(report.unplaced) == 2
    assert "offsets 5-9 ('da L') do not fall on token boundaries" in report.unplaced[0]
    assert "outside the text" in report.unplaced[1]


def test_brat(tmp_path):
    (tmp_path / "a.txt").write_text("Marie Curie worked in Paris and Warsaw.")
    (tmp_path / "a.ann").write_text(
        "T1\tPerson 0 11\tMarie Curie\n"
        "T2\tCity 22 27\tParis\n"
        "T3\tCity 22 27;32 38\tParis Warsaw\n"
        "R1\tLives Arg1:T1 Arg2:T2\n"
        "T4\tCity 32 38\tWarsau\n"
    )
    docs, report = convert_corpus("brat", tmp_path)
    assert [(s.text, s.label_) for s in docs[0].spans["sc"]] == [("Marie Curie", "Person"), ("Paris", "City")]
    assert any("discontinuous" in reason for reason in report.unplaced)
    assert any("not 'Warsau'" in reason for reason in report.unplaced)
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "b.ann").write_text("T1\tPerson zero\n")
    with pytest.raises(ConversionError, match=r"b.ann, line 1"):
        convert_corpus("brat", tmp_path)


def test_distant_labelling_longest_match_and_case(tmp_path):
    dictionary = tmp_path / "dict.txt"
    dictionary.write_text("Chemical\tsodium\nChemical\tsodium chloride\nDisease\tfever\n")
    raw = tmp_path / "raw.txt"
    raw.write_text("Sodium\nchloride\ncauses\nno\nFever\n\nsodium\nonly\n")
    docs, report = distant_corpus(dictionary, raw, ignore_case=True)
    assert [spans_of(doc) for doc in docs] == [[(0, 2, "Chemical"), (4, 5, "Disease")], [(0, 1, "Chemical")]]
    assert report.mentions_read["Chemical"] == 3 and report.mentions_written["Chemical"] == 2
    docs, _ = distant_corpus(dictionary, raw)
    assert spans_of(docs[0]) == []
    dictionary.write_text("Chemical sodium\n")
    with pytest.raises(ConversionError, match="dict.txt, line 1"):
        distant_corpus(dictionary, raw)


def test_cli(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text(IOB2_TSV)
    out = tmp_path / "out.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "spacy_binder", "convert", "iob", str(path), str(out), "--separator", "tab"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "PER: read 2, written 2" in result.stdout
    docs = list(DocBin().from_disk(out).get_docs(Vocab()))
    assert spans_of(docs[0]) == [(0, 2, "PER"), (3, 4, "ORG")]
    path.write_text("a\tI-X\n")
    result = subprocess.run(
        [sys.executable, "-m", "spacy_binder", "convert", "iob", str(path), str(out), "--separator", "tab"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1 and "line 1" in result.stderr
