"""CoNLL column reader: sentences, columns, tag schemes converted to IOB2, and errors naming file and line."""
import random

import pytest

from ptft_keras.data.conll import (
    ConllSentences,
    append_column,
    detect_scheme,
    label_names_for,
    read_conll,
    to_iob2,
)
from ptft_keras.errors import DataError
from ptft_keras.training.metrics import entity_spans

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
"""


def write(tmp_path, text, name="data.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_reads_sentences_words_tags_and_lines(tmp_path):
    data = read_conll(write(tmp_path, CONLL_2003))
    assert data.words == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert data.tags == [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert data.lines == [[3, 4, 5, 6, 7], [9, 10], [13]]  # -DOCSTART- ends a sentence even without a blank line
    assert data.scheme == "IOB2" and len(data) == 3 and data.num_words == 8
    assert data.label_names() == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_columns_by_index_tabs_crlf_and_bom(tmp_path):
    path = write(tmp_path, "\ufeffEU\tNNP\tB-ORG\r\nrejects\tVBZ\tO\r\n\r\n\r\nPeter\tNNP\tB-PER\r\n")
    data = read_conll(path)
    assert data.words == [["EU", "rejects"], ["Peter"]] and data.tags == [["B-ORG", "O"], ["B-PER"]]
    pos = read_conll(write(tmp_path, "NNP EU B-ORG\nVBZ rejects O\n", "pos.txt"), token_column=1, tag_column=-1)
    assert pos.words == [["EU", "rejects"]]
    words_only = read_conll(write(tmp_path, "EU\nrejects\n\nPeter\n", "raw.txt"), tag_column=None)
    assert words_only.words == [["EU", "rejects"], ["Peter"]] and words_only.tags is None


@pytest.mark.parametrize("scheme, raw, iob2", [
    ("IOB2", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    ("IOB1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]),
    ("BIOES", ["B-PER", "I-PER", "E-PER", "S-LOC", "S-LOC", "O", "B-ORG", "E-ORG"],
     ["B-PER", "I-PER", "I-PER", "B-LOC", "B-LOC", "O", "B-ORG", "I-ORG"]),
])
def test_each_scheme_is_read_as_iob2(tmp_path, scheme, raw, iob2):
    path = write(tmp_path, "".join(f"w{i} {tag}\n" for i, tag in enumerate(raw)))
    data = read_conll(path)
    assert data.scheme == scheme
    assert data.tags == [iob2]
    assert detect_scheme([iob2]) == "IOB2"


def test_conversion_keeps_exactly_the_entities_conlleval_reads():
    """to_iob2 must not move, merge or split any entity, whatever the input scheme (or malformed input)."""
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    for _ in range(500):
        sentence = [rng.choice(tags) for _ in range(rng.randint(1, 12))]
        converted = to_iob2(sentence)
        assert entity_spans(converted) == entity_spans(sentence), sentence
        assert all(t == "O" or t[:2] in ("B-", "I-") for t in converted)


def test_label_names_list_both_tags_of_every_type():
    assert label_names_for(["O", "B-PER", "B-LOC", "I-LOC"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert label_names_for(["B-ORG-X"]) == ["O", "B-ORG-X", "I-ORG-X"]  # types may hold dashes


def test_select_and_dataset(tmp_path):
    data = read_conll(write(tmp_path, CONLL_2003)).select([2, 0])
    assert [s[0] for s in data.words] == ["BRUSSELS", "EU"] and data.lines[0] == [13]
    element = next(iter(data.to_dataset()))
    assert element["words"].numpy().tolist() == [b"BRUSSELS"] and element["tags"].numpy().tolist() == [b"B-LOC"]
    ids = data.label_ids(["O", "B-LOC", "I-LOC", "B-ORG", "B-MISC"])
    assert [row.tolist() for row in ids] == [[1], [3, 0, 4, 0, 0]]


# --- errors: each names the file and the 1-based line ---------------------------------------------
def located(excinfo, path, line):
    error = excinfo.value
    assert error.path == str(path) and error.line == line
    assert f"{path}, line {line}" in str(error)
    return str(error)


def test_too_few_columns(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects O\n\nlonely\n")
    with pytest.raises(DataError) as excinfo:
        read_conll(path)
    assert "too few columns (1)" in located(excinfo, path, 4)
    with pytest.raises(DataError) as excinfo:
        read_conll(write(tmp_path, "EU NNP B-ORG\nrejects O\n", "pos.txt"), tag_column=2)
    located(excinfo, tmp_path / "pos.txt", 2)


@pytest.mark.parametrize("tag", ["X-PER", "B-", "PER", "b-PER", "0"])
def test_invalid_tag(tmp_path, tag):
    path = write(tmp_path, f"EU B-ORG\n\nPeter {tag}\n")
    with pytest.raises(DataError) as excinfo:
        read_conll(path)
    message = located(excinfo, path, 3)
    assert repr(tag) in message and "B-/I-/E-/S-" in message and excinfo.value.field == "tag"


def test_tag_outside_the_training_label_set(tmp_path):
    train = read_conll(write(tmp_path, "Peter B-PER\nBlackburn I-PER\n", "train.txt"))
    dev = write(tmp_path, "Paris B-PER\n\nin O\nFrance S-LOC\n", "dev.txt")
    with pytest.raises(DataError) as excinfo:
        read_conll(dev, label_names=train.label_names())
    message = located(excinfo, dev, 4)
    assert "'S-LOC' (read as 'B-LOC' in IOB2)" in message and "O, B-PER, I-PER" in message
    assert read_conll(dev, label_names=train.label_names() + ["B-LOC", "I-LOC"]).tags[1] == ["O", "B-LOC"]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- -X- O\n\n"])
def test_file_without_sentences(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="no sentences") as excinfo:
        read_conll(path)
    assert excinfo.value.path == str(path)


def test_bad_utf8_and_missing_file(tmp_path):
    path = write(tmp_path, b"EU B-ORG\nM\xfcnchen B-LOC\n")
    with pytest.raises(DataError, match="UTF-8") as excinfo:
        read_conll(path)
    located(excinfo, path, 2)
    with pytest.raises(DataError, match="cannot read"):
        read_conll(tmp_path / "missing.txt")


def test_words_only_sentences_have_no_label_set(tmp_path):
    data = read_conll(write(tmp_path, "EU\n"), tag_column=None)
    with pytest.raises(DataError, match="without tags"):
        data.label_names()


# --- writing predictions back -----------------------------------------------------------------------
def test_append_column_keeps_the_layout(tmp_path):
    source = write(tmp_path, CONLL_2003)
    data = read_conll(source, tag_column=None)
    values = {line: f"P{line}" for lines in data.lines for line in lines}
    out = append_column(source, tmp_path / "out" / "pred.txt", values).read_text(encoding="utf-8").splitlines()
    original = CONLL_2003.splitlines()
    assert len(out) == len(original)
    assert out[0] == "-DOCSTART- -X- -X- O O" and out[1] == ""
    assert out[2] == "EU NNP B-NP B-ORG P3" and out[12] == "BRUSSELS NNP B-NP B-LOC P13"
    assert len({len(line.split()) for line in out if line}) == 1  # same column count everywhere, as conlleval wants
    tabs = write(tmp_path, "EU\tB-ORG\r\n", "tabs.txt")
    assert append_column(tabs, tmp_path / "tabs.out", {1: "B-ORG"}).read_bytes() == b"EU\tB-ORG\tB-ORG\r\n"


def test_append_column_refuses_its_input_and_missing_lines(tmp_path):
    source = write(tmp_path, "EU B-ORG\nrejects O\n")
    with pytest.raises(DataError, match="input file"):
        append_column(source, source, {1: "O", 2: "O"})
    with pytest.raises(DataError, match="no prediction") as excinfo:
        append_column(source, tmp_path / "out.txt", {1: "O"})
    located(excinfo, source, 2)


def test_sentences_can_be_built_by_hand():
    data = ConllSentences("mem", [["a", "b"]], [["I-PER", "O"]], [[1, 2]])
    assert data.label_names() == ["O", "B-PER", "I-PER"] and len(data) == 1
