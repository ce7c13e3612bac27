"""``attnlab.load(...).predict`` and ``experiments/predict.py``: every head, decoding, bad input.

Each head gets a real training workdir: one step of its config's ``quick`` variant. One step
leaves a model that answers the same thing to every input, which would hide a mixed-up row,
so step 2 is added: the step-1 weights plus Gaussian noise, saved with the training loop's
own ``Checkpointer``; its outputs depend on the input.

Every test and CLI run shares the session's persistent compilation cache, so a program
compiled in this process (a decoder at some batch shape) is read back, not compiled again, by
the CLI runs.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

import attnlab
from attnlab.data.builders.cn_address import admin_areas, compose_address
from attnlab.decode.at import at_decode
from attnlab.inference import InputError, Predictor
from attnlab.nat.decoding import nat_decode
from attnlab.train import train_and_evaluate
from attnlab.train.checkpoint import Checkpointer
from attnlab.train.cli import load_config_file
from attnlab.train.models import build_model
from attnlab.train.resolve import create_train_state

ROOT = Path(__file__).resolve().parents[2]
PREDICT = ROOT / "experiments" / "predict.py"
# Four words of different lengths, out of length order (the predictor sorts by length), all
# within a source width of 8: one row bucket and one width, so the independent decode below
# runs at the same shapes and shares the compilations.
WORDS = ["attend", "ok", "zebra", "a"]
# The noise key of each model's noisy step: one whose tiny model gives outputs that differ
# between WORDS (key 0 makes the quick AT, which has no attention key bias, emit EOS first for
# every word; key 2 does the same to the classifier).
NOISE_SEEDS = {"g2p.py:at,quick": 2}
SPECS = {
    "at": "g2p.py:at,quick",
    "nat": "g2p.py:nat,quick",
    "tagger": "address.py:quick",
    "classifier": "syllables.py:quick",
}
pytestmark = pytest.mark.usefixtures("compilation_cache_dir")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _add_noisy_step(workdir: Path, seed: int) -> None:
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    _, template, _ = create_train_state(config)
    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=10)
    state, meta = ckpt.restore(template, model_config=config.model.to_dict())
    leaves, treedef = jax.tree.flatten(state["params"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + 0.6 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    params = jax.tree.unflatten(treedef, noisy)
    ckpt.save(2, {**state, "params": params}, {**meta, "step": 2})
    ckpt.wait()
    ckpt.close()


def _train(tmp_path_factory, data_dir: str, spec: str) -> Path:
    config = load_config_file(str(ROOT / "experiments" / "configs" / spec))
    config.data.data_dir = data_dir
    config.update(
        num_train_steps=1,
        checkpoint_every_steps=1,
        eval_every_steps=1,
        log_every_steps=1,
        eval_decode_examples=0,
    )
    workdir = tmp_path_factory.mktemp(spec.replace(".py:", "_").replace(",", "_"))
    train_and_evaluate(config, workdir)
    _add_noisy_step(workdir, NOISE_SEEDS.get(spec, 0))
    return workdir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """``trained(name) -> (workdir, Predictor)`` of ``SPECS[name]``, trained on first use."""
    runs = {}

    def get(name: str) -> tuple[Path, Predictor]:
        if name not in runs:
            workdir = _train(tmp_path_factory, data_dir, SPECS[name])
            runs[name] = (workdir, attnlab.load(workdir))
        return runs[name]

    return get


@pytest.fixture(scope="module")
def at(trained):
    return trained("at")[1]


@pytest.fixture(scope="module")
def nat(trained):
    return trained("nat")[1]


def _src(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """The encoded texts as one batch padded to the model's max_len (no bucketing)."""
    src = np.zeros((len(texts), predictor.max_len), np.int32)
    for i, text in enumerate(texts):
        ids = predictor.info.src_vocab.encode_text(text)
        src[i, : len(ids)] = ids
    return src


def _addresses(predictor: Predictor, n: int = 4) -> list[str]:
    """Composed addresses whose characters are all in the tagger's vocabulary."""
    rng, areas, known = (
        np.random.default_rng(7),
        admin_areas(),
        set(predictor.info.src_vocab.tokens),
    )
    texts = []
    while len(texts) < n:
        text = "".join(piece for piece, _ in compose_address(rng, areas))
        if set(text) <= known:
            texts.append(text)
    return texts


# --- seq2seq -------------------------------------------------------------------------------
def test_at_predictions_equal_the_decode_functions(at):
    predictor = at
    assert predictor.step == 2 and predictor.default_decode() == "greedy"
    canvas = predictor.info.max_target_len
    vocab = predictor.info.tgt_vocab
    for decode, kwargs in [("greedy", {}), ("beam:3", {"method": "beam", "beam_size": 3})]:
        results = predictor.predict(WORDS, decode)
        assert len({r.text for r in results}) > 1, "outputs should depend on the input"
        kwargs["length_penalty"] = predictor.config.length_penalty
        tokens = np.asarray(
            at_decode(predictor.model, _src(predictor, WORDS), max_len=canvas, **kwargs)
        )
        assert [r.tokens for r in results] == [tuple(vocab.decode(row)) for row in tokens]
        assert all(r.text == " ".join(r.tokens) for r in results)


def test_greedy_equals_one_beam_unless_the_beam_finds_a_better_hypothesis(at):
    # decode/search.py: one beam follows the greedy path but also offers the EOS extension of
    # its prefix at every step. So it returns the greedy output, or a finished hypothesis that
    # scores better, or, when greedy ran to max_len without an EOS, any finished hypothesis
    # (finished ones rank before unfinished ones).
    canvas = at.info.max_target_len
    greedy = at.predict(WORDS, "greedy")
    beam = at.predict(WORDS, "beam:1")
    for g, b in zip(greedy, beam):
        if g.tokens == b.tokens:
            assert b.score == pytest.approx(g.score, abs=1e-5)
        elif len(g.tokens) < canvas:  # greedy finished
            assert b.score > g.score
        else:
            assert len(b.tokens) < canvas


def test_nat_predictions_equal_nat_decode(nat):
    # The config's strategy, length_beam:3+mask_predict:4, runs every part: the length head,
    # several candidate lengths, and refinement.
    strategy = nat.default_decode()  # nat_strategy "": the cmlm recipe's default
    assert nat.config.nat_strategy == "" and strategy == "length_beam:3+mask_predict:4"
    results = nat.predict(WORDS)
    out = nat_decode(nat.model, _src(nat, WORDS), strategy, max_len=nat.info.max_target_len)
    vocab = nat.info.tgt_vocab
    assert [r.tokens for r in results] == [
        tuple(vocab.decode(row)) for row in np.asarray(out.tokens)
    ]
    assert len({r.text for r in results}) > 1


def test_decode_choices_follow_the_training_recipe(at, nat):
    for decode in ("length_pred", "beam", "beam:0", "greedy:2"):
        with pytest.raises(ValueError, match=r"for this seq2seq model; valid: greedy, beam:K$"):
            at.predict(["a"], decode)
    assert nat.model.recipe.name == "cmlm"  # a CMLM: refinement is meaningful
    for decode in ("oracle_length", "eos_cut", "ctc", "greedy", "length_beam:0"):
        with pytest.raises(ValueError, match="for this nat model; valid: length_pred, length_beam"):
            nat.predict(["a"], decode)
    vanilla = _with_recipe(nat, "vanilla", "offset")
    assert vanilla.decode_choices() == ("length_pred", "length_beam:K")
    with pytest.raises(ValueError, match="valid: length_pred, length_beam:K$"):
        vanilla.predict(["a"], "length_pred+mask_predict:2")
    canvas = _with_recipe(nat, "eos_canvas", "none")
    assert canvas.decode_choices() == ("eos_cut",) and canvas.default_decode() == "eos_cut"
    out = nat_decode(canvas.model, _src(nat, WORDS), "eos_cut")
    expected = [tuple(nat.info.tgt_vocab.decode(row)) for row in np.asarray(out.tokens)]
    assert [r.tokens for r in canvas.predict(WORDS, "eos_cut")] == expected


def _with_recipe(predictor, recipe, length_mode):
    """``predictor``'s NAT as another recipe: its encoder and decoder weights, the recipe's
    heads (the length head copied where the recipe has one)."""
    config = _with(predictor.config)
    config.model.update(nat_recipe=recipe, length_mode=length_mode)
    model = build_model(config.model, rngs=nnx.Rngs(0))
    for part in ("encoder", "decoder", "length_predictor"):
        if hasattr(model, part):
            nnx.update(getattr(model, part), nnx.state(getattr(predictor.model, part)))
    return Predictor(model, config, predictor.info, predictor.step)


def _with(config, **changes):
    config = ml_collections.ConfigDict(config.to_dict())
    config.update(changes)
    return config


# --- tagger and classifier -----------------------------------------------------------------
def test_tagger_spans_partition_the_input(trained):
    _, predictor = trained("tagger")
    texts = _addresses(predictor)
    results = predictor.predict(texts)
    direct = np.argmax(np.asarray(predictor.model(_src(predictor, texts))), axis=-1)
    names = predictor.info.label_names
    for text, result, row in zip(texts, results, direct):
        assert "".join(piece for piece, _ in result.spans) == text
        assert result.tags == tuple(names[k] for k in row[: len(text)])
        kinds = {t.split("-", 1)[-1] for t in result.tags}
        assert all(piece and kind in kinds for piece, kind in result.spans)
        assert str(result) == " ".join(f"{piece}/{kind}" for piece, kind in result.spans)
    assert len({r.tags for r in results}) > 1


def test_classifier_gives_a_valid_class(trained):
    _, predictor = trained("classifier")
    results = predictor.predict(WORDS)
    logits = np.asarray(predictor.model(_src(predictor, WORDS)))
    names = predictor.info.label_names
    assert len(names) == predictor.config.model.num_classes == 9
    for result, row in zip(results, logits):
        assert result.label == int(np.argmax(row)) and 0 <= result.label < len(names)
        assert str(result) == result.name == names[result.label]
        assert result.probability == pytest.approx(float(np.max(jax.nn.softmax(row))), rel=1e-5)
    assert len({r.label for r in results}) > 1
    with pytest.raises(
        ValueError, match="decode applies to seq2seq models; this one is a classifier"
    ):
        predictor.predict(WORDS, "greedy")


def test_results_do_not_depend_on_the_batch_and_shapes_compile_once(trained, compilations):
    _, predictor = trained("classifier")
    together = predictor.predict(WORDS)
    with compilations() as events:
        reversed_words = predictor.predict(WORDS[::-1])
    assert reversed_words == together[::-1]
    assert events == []  # same buckets: no new compile
    alone = [predictor.predict([w])[0] for w in WORDS]
    assert [r.label for r in alone] == [r.label for r in together]


# --- bad input -----------------------------------------------------------------------------
def test_bad_texts_raise_one_input_error(at):
    predictor = at
    cases = [
        (["ok", ""], "text 1: empty$"),
        (["  "], "text 0: empty$"),
        (["a" * 65], "text 0: 65 characters; the model reads at most 64$"),
        (["héllo"], "text 0: characters not in the vocabulary of cmudict_g2p: 'é'; unknown='unk'"),
        (["hi!", "", "ok"], r"text 0: .*'!'.* \(and 1 more bad texts\)$"),
    ]
    for texts, match in cases:
        with pytest.raises(InputError, match=match):
            predictor.predict(texts)
    (result,) = predictor.predict(["héllo"], unknown="unk")
    assert result.unknown == ("é",)
    with pytest.raises(ValueError, match="not one string"):
        predictor.predict("hello")
    with pytest.raises(ValueError, match="valid: error, unk"):
        predictor.predict(["ok"], unknown="drop")


def test_input_case_is_folded_into_the_vocabularys_one_case(at):
    vocab = at.info.src_vocab
    assert vocab.case == "lower"  # CMUdict's words
    assert all(t == t.lower() for t in vocab.tokens[5:]) and "a" in vocab.tokens
    cased = at.predict(["ATTEND", "Zebra", "ok"])
    lower = at.predict(["attend", "zebra", "ok"])
    assert [r.tokens for r in cased] == [r.tokens for r in lower]
    assert [r.case_folded for r in cased] == ["lower", "lower", ""]
    assert [r.case_folded for r in lower] == ["", "", ""]
    # What folding cannot fix is refused, named as the folded text holds it.
    with pytest.raises(
        InputError,
        match=r"^text 0: characters not in the vocabulary of "
        r"cmudict_g2p \(after lower-casing\): 'ß', 'é'; unknown='unk'",
    ):
        at.predict(["HÉßO"])


def test_load_errors_name_the_problem(trained, tmp_path):
    at_run, _ = trained("at")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        attnlab.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="is not a training workdir"):
        attnlab.load(tmp_path)
    (tmp_path / "config.json").write_text((at_run / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        attnlab.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint of step 9 .*; valid: 1, 2$"):
        attnlab.load(at_run, step=9)
    assert attnlab.load(at_run, step=1).step == 1


# --- the command line ----------------------------------------------------------------------
def _cli(*args, stdin=""):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, str(PREDICT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize("head", ["at", "nat", "tagger", "tagger_tags", "classifier"])
def test_cli_prints_what_the_api_predicts(head, trained):
    model = head.split("_")[0]
    run, predictor = trained(model)
    texts, args, kwargs = WORDS, [], {}
    if head == "at":  # a capital lower-cased, an unknown character read as <unk>: one line each
        texts, args, kwargs = [*WORDS[:3], "Héllo"], ["--unknown=unk"], {"unknown": "unk"}
    if head == "nat":
        args = ["--decode=length_beam:3+mask_predict:4"]
    if model == "tagger":
        texts = _addresses(predictor)
    if head == "tagger_tags":
        args = ["--tags"]
    if head == "classifier":  # --input instead of stdin, capitalised
        texts, args = [WORDS[2].title()], [f"--input={WORDS[2].title()}"]
    results = predictor.predict(texts, **kwargs)
    expected = [" ".join(r.tags) if args == ["--tags"] else str(r) for r in results]
    stdin = "" if head == "classifier" else "".join(t + "\n" for t in texts)
    proc = _cli(f"--workdir={run}", *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
    warnings = [line for line in proc.stderr.splitlines() if "predict.py" in line]
    if head == "at":
        assert warnings == [
            "predict.py: note: input (1 of 4 lines) lower-cased to match the vocabulary",
            f"predict.py: warning: line {len(texts)}: 'é' not in the vocabulary, read as <unk>",
        ]
    elif head == "classifier":
        assert warnings == ["predict.py: note: input lower-cased to match the vocabulary"]
    else:
        assert warnings == []


@pytest.mark.parametrize(
    "case, message",
    [
        ("lines", "line 2: empty (and 1 more bad lines)"),
        (
            "unknown",
            "--input: characters not in the vocabulary of cmudict_g2p (after lower-casing): "
            "'ß', 'é'; --unknown=unk reads them as <unk>",
        ),
        ("decode", "unknown decode 'length_pred' for this seq2seq model; valid: greedy, beam:K"),
        ("tags", "--tags applies to a tagger; this model is a seq2seq"),
        ("no_checkpoint", "no checkpoint in "),
        ("not_a_workdir", "is not a training workdir: no readable config.json"),
        ("experiment_dir", "{dir} is not a training workdir; it holds: {dir}/at, {dir}/nat"),
    ],
)
def test_cli_bad_input_is_one_line_and_a_nonzero_exit(case, message, trained, tmp_path):
    at_run, _ = trained("at")
    workdir, args, stdin = at_run, [], ""
    if case == "lines":
        stdin = "ok\n\n" + "a" * 70 + "\nok\n"
    if case == "unknown":
        args = ["--input=HÉßLLO"]
    if case == "decode":
        args = ["--input=ok", "--decode=length_pred"]
    if case == "tags":
        args = ["--input=ok", "--tags"]
    if case == "no_checkpoint":
        workdir = tmp_path
        (tmp_path / "config.json").write_text((at_run / "config.json").read_text())
    if case == "not_a_workdir":
        workdir = tmp_path
    if case == "experiment_dir":  # as make demo's runs/demo: one training workdir a model
        workdir = tmp_path / "demo"
        workdir.mkdir()
        (workdir / "config.json").write_text('{"at": {}, "nat": {}}')  # the experiment's
        (workdir / "at").symlink_to(at_run)
        (workdir / "nat").symlink_to(trained("nat")[0])
        (workdir / "plots").mkdir()  # not a training workdir: not named
    proc = _cli(f"--workdir={workdir}", *args, stdin=stdin or "ok\n")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict.py: error: ")
    assert message.format(dir=workdir) in lines[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_ends_with_a_predict_command_per_model_that_runs(trained, tmp_path):
    """The last lines of ``make demo``: a ready-to-run predict command for each model folder
    the demo made. Here the demo's training and decoding are left out (``DEMO=true``), and its
    folders are this module's trained AT and NAT."""
    demo, stamp = tmp_path / "demo", tmp_path / "installed"
    demo.mkdir()
    stamp.touch()  # newer than pyproject.toml and requirements.lock: nothing is installed
    runs = {name: trained(name) for name in ("at", "nat")}
    for name, (run, _) in runs.items():
        (demo / name).symlink_to(run)
    settings = [f"DEMO_DIR={demo}", f"STAMP={stamp}", f"PY={sys.executable}", "DEMO=true", "PIN="]
    made = subprocess.run(
        ["make", "-s", "demo", *settings], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    commands = made.stdout.strip().splitlines()[-2:]
    python = f"{sys.executable} experiments/predict.py"
    assert commands == [f"  {python} --workdir={demo}/{m} --input=attention" for m in runs]
    # The two differ in their folder alone; the NAT's runs (the CLI tests above run the AT).
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        shlex.split(commands[1]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(runs["nat"][1].predict(["attention"])[0])]


def test_import_attnlab_stays_light_until_load_is_used():
    code = (
        "import sys, attnlab; assert 'jax' not in sys.modules, 'jax imported'; "
        "from attnlab.inference import load; assert attnlab.load is load"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
