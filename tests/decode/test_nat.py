"""NAT decoding strategies on a tiny NATSeq2Seq trained here on a copy task.

The model learns to copy the source (target = source + EOS) from two kinds of decoder input:
L MASK tokens at the target length L (what length-based strategies feed), and the full canvas
of MASK tokens with targets EOS-then-PAD (what eos_cut feeds).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attnlab.decode.at import at_log_prob
from attnlab.metrics import length_accuracy, token_accuracy
from attnlab.nat import RECIPES, parse_strategy
from attnlab.nat.decoding import nat_decode, pick
from attnlab.nat.vanilla import decode_at_lengths
from attnlab.nn import model_config
from attnlab.train.models import build_model

PAD, BOS, EOS, MASK = 0, 1, 2, 4
VOCAB, CANVAS = 12, 8


def copy_batch(rng, batch):
    """Sources of 2..CANVAS-2 tokens; targets = source + EOS (length counts the EOS)."""
    lengths = rng.integers(2, CANVAS - 1, size=batch)
    src = np.zeros((batch, CANVAS), np.int32)
    tgt = np.zeros((batch, CANVAS), np.int32)
    for row, n in enumerate(lengths):
        src[row, :n] = rng.integers(5, VOCAB, size=n)
        tgt[row, :n], tgt[row, n] = src[row, :n], EOS
    return src, tgt


def nat_config(**overrides):
    return model_config(
        **{"nat_recipe": "cmlm", **overrides},
        name="nat",
        vocab_size=VOCAB,
        target_vocab_size=VOCAB,
        d_model=32,
        num_heads=4,
        d_ff=64,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dropout=0.0,
        max_len=CANVAS,
    )


@pytest.fixture(scope="module")
def trained():
    cfg = nat_config()
    graphdef, params, rest = nnx.split(build_model(cfg, rngs=nnx.Rngs(0)), nnx.Param, ...)
    tx = optax.adam(3e-3)

    @jax.jit
    def train_step(params, opt_state, src, tgt, canvas_rows):
        # Length rows: MASK at the L target positions, loss there. Canvas rows: MASK everywhere,
        # loss everywhere (EOS, then PAD as a target).
        dec = jnp.where(canvas_rows[:, None] | (tgt != PAD), MASK, PAD)
        weight = (canvas_rows[:, None] | (tgt != PAD)).astype(jnp.float32)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, rest)
            logits, length_logits = model(src, dec, train=True)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
            classes = model.length_classes((tgt != PAD).sum(1), (src != PAD).sum(1))
            length_nll = optax.softmax_cross_entropy_with_integer_labels(length_logits, classes)
            return jnp.sum(nll * weight) / jnp.sum(weight) + length_nll.mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(0)
    canvas_rows = jnp.asarray(np.arange(64) % 2 == 1)
    opt_state = tx.init(params)
    for _ in range(250):
        src, tgt = copy_batch(rng, 64)
        params, opt_state, loss = train_step(params, opt_state, src, tgt, canvas_rows)
    assert float(loss) < 0.3, f"the copy task did not train (loss {float(loss):.3f})"
    src, tgt = copy_batch(np.random.default_rng(1), 16)
    return nnx.merge(graphdef, params, rest), jnp.asarray(src), tgt


def lengths_of(tgt):
    return (tgt != PAD).sum(1)


def assert_well_formed(out):
    """Content tokens, EOS at L-1, then PAD."""
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for row, n in zip(tokens, lengths):
        assert row[n - 1] == EOS and np.all(row[n:] == PAD)
        assert not np.isin(row[: n - 1], [PAD, BOS, EOS, MASK]).any()


def one_pass(model, src, lengths):
    """Reference: one parallel pass of the decoder over L MASK tokens, argmax per position."""
    pos = np.arange(CANVAS)[None, :]
    dec = jnp.asarray(np.where(pos < lengths[:, None], MASK, PAD).astype(np.int32))
    logp = np.asarray(jax.nn.log_softmax(model.decode(dec, model.encode(src), src), axis=-1))
    allowed = logp.copy()
    allowed[..., [PAD, BOS, EOS, MASK]] = -np.inf
    tokens = np.where(pos < lengths[:, None] - 1, allowed.argmax(-1), PAD)
    tokens[np.arange(len(lengths)), lengths - 1] = EOS
    return tokens, logp


def test_oracle_length_gets_the_exact_length_and_copies_the_source(trained):
    model, src, tgt = trained
    out = nat_decode(model, src, "oracle_length", ref_lengths=lengths_of(tgt))
    np.testing.assert_array_equal(out.lengths, lengths_of(tgt))
    assert_well_formed(out)
    assert token_accuracy(out.tokens, tgt, tgt != PAD) > 0.9


def test_length_pred_takes_the_argmax_length(trained):
    model, src, tgt = trained
    out = nat_decode(model, src, "length_pred")
    log_probs = np.asarray(model.length_log_probs(model.encode(src), src))
    np.testing.assert_array_equal(out.lengths, log_probs[:, 1:].argmax(1) + 1)
    assert length_accuracy(out.lengths, lengths_of(tgt)) > 0.9
    assert_well_formed(out)


def test_mask_predict_1_is_one_parallel_pass_and_length_beam_1_is_length_pred(trained):
    model, src, _ = trained
    pred = nat_decode(model, src, "length_pred")
    lengths = np.asarray(pred.lengths)
    tokens, logp = one_pass(model, src, lengths)
    np.testing.assert_array_equal(pred.tokens, tokens)
    token_logp = np.take_along_axis(logp, tokens[..., None], -1)[..., 0]
    mean = np.where(tokens != PAD, token_logp, 0).sum(1) / lengths
    np.testing.assert_allclose(pred.scores, mean, rtol=1e-5, atol=1e-6)
    for other in ("mask_predict:1", "length_beam:1"):
        out = nat_decode(model, src, other)
        for a, b in zip(out, pred):
            np.testing.assert_array_equal(a, b)


def test_length_beam_keeps_the_best_mean_log_prob_of_its_candidate_lengths(trained):
    model, src, _ = trained
    k = 3
    out = nat_decode(model, src, f"length_beam:{k}")
    log_probs = np.asarray(model.length_log_probs(model.encode(src), src))[:, 1:]
    candidates = np.argsort(-log_probs, axis=1, kind="stable")[:, :k] + 1
    per_length = [nat_decode(model, src, "oracle_length", ref_lengths=c) for c in candidates.T]
    scores = np.stack([np.asarray(o.scores) for o in per_length], 1)
    best = scores.argmax(1)
    for row in range(src.shape[0]):
        chosen = per_length[best[row]]
        assert out.lengths[row] == chosen.lengths[row]
        np.testing.assert_array_equal(out.tokens[row], chosen.tokens[row])
    np.testing.assert_allclose(out.scores, scores.max(1), rtol=1e-5, atol=1e-6)


def test_decoding_at_given_lengths_is_oracle_length_at_each_and_length_beam_at_its_own(trained):
    """A recorded length_beam decode is timed on a fresh model given the lengths its trained
    model chose (analysis.recorded): each given length decodes as oracle_length does, and
    given its own top lengths a model keeps what length_beam keeps."""
    model, src, _ = trained
    k = 3
    log_probs = np.asarray(model.length_log_probs(model.encode(src), src))[:, 1:]
    order = np.argsort(-log_probs, axis=1, kind="stable")[:, :k] + 1
    out = decode_at_lengths(model, src, order)
    np.testing.assert_array_equal(out.lengths, order)
    for j in range(k):
        one = nat_decode(model, src, "oracle_length", ref_lengths=order[:, j])
        np.testing.assert_array_equal(out.tokens[:, j], one.tokens)
        np.testing.assert_allclose(out.scores[:, j], one.scores, rtol=1e-5, atol=1e-6)
    beam = nat_decode(model, src, f"length_beam:{k}")
    for a, b in zip(pick(out.tokens, out.lengths, out.scores), beam, strict=True):
        np.testing.assert_array_equal(a, b)
    other = np.broadcast_to(np.array([2, 5, 7], np.int32), order.shape)  # not the model's
    np.testing.assert_array_equal(decode_at_lengths(model, src, other).lengths, other)
    with pytest.raises(ValueError, match=r"lengths must be \[B, k\] and >= 1"):
        decode_at_lengths(model, src, other[:, 0])
    with pytest.raises(ValueError, match=r"lengths must be <= max_len=8"):
        decode_at_lengths(model, src, other + 6)
    headless = build_model(
        nat_config(nat_recipe="eos_canvas", length_mode="none"), rngs=nnx.Rngs(0)
    )
    with pytest.raises(ValueError, match="needs a length head; nat_recipe 'eos_canvas' has none"):
        decode_at_lengths(headless, src, order)


def test_length_beam_rescoring_picks_the_rescorers_favourite(trained):
    model, src, _ = trained
    k = 3
    # A callable rescorer that prefers the longest candidate.
    out = nat_decode(model, src, f"length_beam:{k}", rescorer=lambda s, t: (t != PAD).sum(1))
    log_probs = np.asarray(model.length_log_probs(model.encode(src), src))[:, 1:]
    longest = np.sort(np.argsort(-log_probs, axis=1, kind="stable")[:, :k], axis=1)[:, -1] + 1
    np.testing.assert_array_equal(out.lengths, longest)
    # An AT model: the kept candidate is the one the AT model finds most probable, so it is at
    # least as probable as the length_pred output, which is one of the candidates.
    at_model = build_model(
        model_config(
            name="seq2seq",
            vocab_size=VOCAB,
            target_vocab_size=VOCAB,
            d_model=16,
            num_heads=2,
            d_ff=32,
            num_encoder_layers=1,
            num_decoder_layers=1,
            dropout=0.0,
            max_len=CANVAS,
        ),
        rngs=nnx.Rngs(1),
    )
    rescored = nat_decode(model, src, f"length_beam:{k}", rescorer=at_model)
    np.testing.assert_allclose(
        rescored.scores, at_log_prob(at_model, src, rescored.tokens), rtol=1e-5
    )
    pred = nat_decode(model, src, "length_pred")
    assert np.all(
        np.asarray(rescored.scores) >= np.asarray(at_log_prob(at_model, src, pred.tokens)) - 1e-5
    )


def as_eos_canvas(model):
    """An ``eos_canvas`` model (no length head) with ``model``'s encoder and decoder."""
    eos = build_model(nat_config(nat_recipe="eos_canvas", length_mode="none"), rngs=nnx.Rngs(0))
    nnx.update(eos.encoder, nnx.state(model.encoder))
    nnx.update(eos.decoder, nnx.state(model.decoder))
    return eos


def test_eos_cut_leaves_nothing_after_the_first_eos_and_no_pad_before_it(trained):
    model, src, tgt = trained
    model = as_eos_canvas(model)
    out = nat_decode(model, src, "eos_cut", max_len=4)  # the canvas is the model's, always
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    assert tokens.shape == (len(src), CANVAS)
    for row, n in zip(tokens, lengths):
        eos = np.flatnonzero(row == EOS)
        assert not np.isin(row[:n], [PAD, BOS, MASK]).any()
        if len(eos):
            assert n == eos[0] + 1 and np.all(row[n:] == PAD)
        else:
            assert n == CANVAS
    # Trained to emit EOS then PAD over the canvas, it finds the lengths and the tokens.
    assert length_accuracy(lengths, lengths_of(tgt)) > 0.8
    assert token_accuracy(tokens, tgt, tgt != PAD) > 0.8


def mask_predict_reference(model, src, lengths, iterations):
    """Mask-predict as the CMLM paper states it, one row at a time in numpy."""
    tokens, logp = one_pass(model, src, lengths)
    probs = np.take_along_axis(logp, tokens[..., None], -1)[..., 0]
    enc = model.encode(src)
    for t in range(1, iterations):
        dec = tokens.copy()
        remask = np.zeros_like(tokens, bool)
        for row, L in enumerate(lengths):
            n = (L - 1) * (iterations - t) // iterations  # the EOS at L-1 stays
            remask[row, np.argsort(probs[row, : L - 1], kind="stable")[:n]] = True
        dec[remask] = MASK
        logp = np.asarray(jax.nn.log_softmax(model.decode(jnp.asarray(dec), enc, src), axis=-1))
        allowed = logp.copy()
        allowed[..., [PAD, BOS, EOS, MASK]] = -np.inf
        tokens = np.where(remask, allowed.argmax(-1), tokens)
        probs = np.where(remask, np.take_along_axis(logp, tokens[..., None], -1)[..., 0], probs)
    return tokens, probs


@pytest.mark.parametrize("weights", ["trained", "untrained"])
def test_mask_predict_follows_the_cmlm_algorithm(trained, weights):
    # The untrained model is unsure of every token, so re-masking and re-predicting matter.
    model, src, tgt = trained
    if weights == "untrained":
        model = build_model(nat_config(), rngs=nnx.Rngs(7))
    lengths = lengths_of(tgt)
    out = nat_decode(model, src, "oracle_length+mask_predict:3", ref_lengths=lengths)
    tokens, probs = mask_predict_reference(model, src, lengths, 3)
    np.testing.assert_array_equal(out.tokens, tokens)
    mean = np.where(tokens != PAD, probs, 0).sum(1) / lengths
    np.testing.assert_allclose(out.scores, mean, rtol=1e-5, atol=1e-6)
    assert_well_formed(out)


def test_strategy_names_are_parsed_and_bad_ones_refused(trained):
    cmlm = RECIPES["cmlm"]
    assert cmlm.parse_strategy("length_beam:5+mask_predict:10") == ("length_beam", 5, 10)
    assert cmlm.parse_strategy("mask_predict:4") == ("length_pred", 1, 4)
    assert parse_strategy("ctc_beam:4") == ("ctc_beam", 4, 1)  # whichever recipe decodes it
    for bad in ("length_beam:0", "beam", "eos_cut+mask_predict:2", "length_pred+oracle_length"):
        with pytest.raises(ValueError, match="valid: length_pred, length_beam:K"):
            parse_strategy(bad)
        with pytest.raises(ValueError, match="does not apply to nat_recipe 'cmlm'; valid: le"):
            cmlm.parse_strategy(bad)
    model, src, _ = trained
    with pytest.raises(ValueError, match="needs ref_lengths"):
        nat_decode(model, src, "oracle_length")
    with pytest.raises(ValueError, match="ref_lengths must be"):
        nat_decode(model, src, "oracle_length", ref_lengths=np.full(len(src), CANVAS + 1))
    with pytest.raises(ValueError, match="only used by length_beam"):
        nat_decode(model, src, "length_pred", rescorer=lambda s, t: t.sum(1))


def test_a_model_refuses_the_strategies_its_recipe_cannot_decode(trained):
    cmlm, src, _ = trained
    cases = [
        (cmlm, "eos_cut", "'eos_cut' does not apply to nat_recipe 'cmlm'; valid: length_pred"),
        (cmlm, "ctc_beam:2", "'ctc_beam:2' does not apply to nat_recipe 'cmlm'"),
        (as_eos_canvas(cmlm), "length_pred", "valid: eos_cut$"),
        (
            build_model(nat_config(nat_recipe="vanilla"), rngs=nnx.Rngs(0)),
            "mask_predict:2",
            "nat_recipe 'vanilla'",
        ),
    ]
    for model, strategy, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            nat_decode(model, src, strategy)
        assert "\n" not in str(err.value)
