"""The Phonetisaurus baseline (baselines.phonetisaurus, its row analysis.wfst_baseline) on a
400-word build: what it outputs, that it learns, that it is deterministic, that its row is
reported again from its record, and its one-line errors. Seconds: the WFST trains on about 390
pronunciations in about a second."""

import json
from pathlib import Path

import pytest

pytest.importorskip("phonetisaurus")

from avn_testing import quick_run  # noqa: E402

from attnlab.analysis import wfst_baseline  # noqa: E402
from attnlab.baselines import phonetisaurus as wfst  # noqa: E402
from attnlab.data import data_config, dataset_info  # noqa: E402
from attnlab.data.datasets import prepare  # noqa: E402
from attnlab.data.sources import iter_records, text  # noqa: E402
from attnlab.metrics import wer  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The data, its training lexicon, and the WFST trained on it."""
    data = data_config(data_dir=str(tmp_path_factory.mktemp("data")), max_source_examples=400)
    lexicon = wfst.training_lexicon(data)
    trained = wfst.train(lexicon, tmp_path_factory.mktemp("wfst"))
    return data, lexicon, trained


def _by_word(lexicon) -> dict[str, list[list[str]]]:
    prons: dict[str, list[list[str]]] = {}
    for word, phonemes in lexicon:
        prons.setdefault(word, []).append(phonemes)
    return prons


def test_the_lexicon_is_the_training_split_as_its_records_hold_it(built):
    data, lexicon, _ = built
    records = iter_records(prepare(data).source("train"))
    raw = [(text(r["word"]), text(r["phonemes"]).split()) for r in records]
    assert lexicon == raw  # none over 32 tokens here, so none filtered
    assert {p for _, pron in lexicon for p in pron} <= set(dataset_info(data).tgt_vocab.tokens)


def test_every_output_phoneme_is_in_our_phoneme_vocabulary(built):
    data, _, trained = built
    info = dataset_info(data)
    words = ["attention", "phonetisaurus", "xylophone", "o'brien", "well-known", "q"]
    outputs = wfst.decode(trained.model, words)
    assert all(outputs[:5]), outputs  # a phoneme for each real word
    assert {p for o in outputs for p in o} <= set(info.tgt_vocab.tokens[5:])


def test_it_learns_its_training_words_far_better_than_a_trivial_baseline(built):
    _, lexicon, trained = built
    prons = _by_word(lexicon)
    words = sorted(prons)
    refs = [prons[w] for w in words]
    own = wer(wfst.decode(trained.model, words), refs)
    # trivial: the commonest pronunciation length, filled with the commonest phoneme
    phonemes = [p for _, pron in lexicon for p in pron]
    commonest = max(set(phonemes), key=phonemes.count)
    lengths = [len(pron) for _, pron in lexicon]
    trivial = wer([[commonest] * max(set(lengths), key=lengths.count)] * len(words), refs)
    assert trivial > 0.95
    assert own < 0.1, own


def test_decoding_the_same_words_twice_gives_the_same_outputs(built):
    _, lexicon, trained = built
    words = sorted({w for w, _ in lexicon})[:100]
    first = wfst.decode(trained.model, words)
    assert wfst.decode(trained.model, words) == first
    assert [wfst.decode(trained.model, [w])[0] for w in words[:5]] == first[:5]


def test_a_trained_directory_is_reused_on_its_lexicon_and_refused_on_another(built, tmp_path):
    _, lexicon, trained = built
    again = wfst.train(lexicon, trained.model.parent)
    assert again == trained  # read from trained.json, not trained again
    with pytest.raises(ValueError, match="trained on another lexicon; remove it"):
        wfst.train(lexicon[1:], trained.model.parent)


def test_a_missing_binary_or_an_empty_lexicon_is_one_clear_line(built, tmp_path, monkeypatch):
    _, lexicon, _ = built
    with pytest.raises(ValueError, match="the training lexicon is empty") as empty:
        wfst.train([], tmp_path / "empty")
    import phonetisaurus as package  # the pip package, whose binaries ours runs

    monkeypatch.setattr(package, "guess_environment", lambda: {"PATH": str(tmp_path)})
    with pytest.raises(ValueError, match="binary phonetisaurus-train not found on") as missing:
        wfst.train(lexicon, tmp_path / "none")
    assert "\n" not in str(empty.value) + str(missing.value)
    assert not (tmp_path / "none").exists()


def test_its_row_is_reported_again_from_its_record_without_training(tmp_path):
    """The experiment with ``phonetisaurus`` alone: trained, decoded, scored and recorded; then
    in an empty workdir from the record only: the same outputs and scores."""
    store = tmp_path / "recorded"
    settings = dict(recorded=str(store))
    first = quick_run(["phonetisaurus"], tmp_path / "data", tmp_path / "run", **settings)
    assert (tmp_path / "run" / "phonetisaurus" / "model.fst").exists()
    again = quick_run(["phonetisaurus"], tmp_path / "data", tmp_path / "again", **settings)
    assert not (tmp_path / "again" / "phonetisaurus").exists()  # nothing trained
    (row,), (back,) = first, again
    assert (row["outputs"], back["outputs"]) == ("decoded", "recorded")
    assert {**row, "outputs": "-"} == {**back, "outputs": "-"}
    assert row["examples"] == 24 and 0.0 <= row["wer"] < 1.0 and row["one_pass"] is False
    assert row["train_s"] > 0 and row["latency_ms_b1"] > 0 and row["budget"]
    report = (tmp_path / "again" / "report.md").read_text()
    assert "WFST (Phonetisaurus), CPU, not JAX" in report
    results = json.loads((tmp_path / "again" / "results.json").read_text())
    assert results["systems"][0]["system"] == "phonetisaurus"


def test_a_record_of_another_training_lexicon_is_refused(tmp_path):
    record = wfst_baseline.WfstRecord(
        system="phonetisaurus", model="phonetisaurus", decoding="wfst 1-best", split="test",
        references_digest=wfst_baseline.recorded.references_digest([[["K"]]]), step=0,
        params=10, config={"lexicon_sha1": "aaa", "data": {"data_dir": "/there"}}, curve=[],
        hyps=[["K"]], lengths=None, output_lengths=[2], steps=None, timing={"train_s": 1.0},
    )  # fmt: skip
    wfst_baseline.recorded.save(tmp_path, record)
    here = {"lexicon_sha1": "aaa", "data": {"data_dir": "/here"}}  # another machine's paths
    assert wfst_baseline.load(tmp_path, here, "test", [[["K"]]]) == record
    with pytest.raises(ValueError, match="have another lexicon_sha1; remove them"):
        wfst_baseline.load(tmp_path, {**here, "lexicon_sha1": "bbb"}, "test", [[["K"]]])
    with pytest.raises(ValueError, match="another split or other references"):
        wfst_baseline.load(tmp_path, here, "test", [[["T"]]])
    assert wfst_baseline.load(Path(tmp_path) / "none", here, "test", []) is None
