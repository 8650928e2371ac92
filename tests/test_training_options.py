"""Class weights, early stopping and in-program augmentation (dynamic per model)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reslstm_jax import train
from reslstm_jax.train import augment, engine
from reslstm_jax.train.layout import ModelLayout, class_weights

COMMON = dict(model_config=(("hidden_size", 4),), seeds=(0,), epochs=3, batch_size=8,
              executor="map")  # fmt: skip
OPTIONS = dict(class_weights="balanced", patience=2, time_mask=2, feature_mask=2, noise_std=0.1,
               mixup_alpha=0.4)  # fmt: skip


def test_unused_options_add_nothing_to_the_program():
    layout = ModelLayout(1, (0,), ("f0", "f1"))
    hp = layout.hparams([train.RunSettings()])
    assert all(getattr(hp, f.name) is None for f in dataclasses.fields(hp)
               if f.name not in ("learning_rate", "weight_decay", "dropout", "t0"))  # fmt: skip


@pytest.mark.parametrize(
    "kind,labels,expected",
    [("none", [0, 0, 1], [1, 1, 1]),
     ("balanced", [0, 0, 0, 1], [4 / 6, 2, 1]),  # n / (present classes x count); absent: 1
     ("balanced", [0, 1, 2, 2], [4 / 3, 4 / 3, 2 / 3])],
)  # fmt: skip
def test_class_weights(kind, labels, expected):
    # float32 weights against float64 fractions: one rounding (<= 6e-8; measured 3e-8)
    np.testing.assert_allclose(class_weights(kind, np.array(labels), 3), expected, rtol=1e-6)


class _Logits:
    """A stand-in model whose training forward pass returns fixed logits."""

    def __init__(self, logits):
        self.logits = logits

    def apply(self, variables, x, lengths, **kwargs):
        return (self.logits, {}), {}

    def loss_heads(self, logits, extras):
        return [(1.0, logits)]

    def penalty(self, params):
        return 0.0


def test_weighted_and_mixed_loss_is_torchs_weighted_mean():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)
    labels, partner = jnp.array([0, 1, 2, 0]), jnp.array([1, 0, 0, 2])
    valid = jnp.array([True, True, True, False])
    weights = jnp.array([0.5, 2.0, 1.0])
    ce = -jax.nn.log_softmax(logits)
    loss = engine.batch_loss(_Logits(logits), "ce", {}, {}, None, None, labels, valid, None,
                             0.0, (weights, None, 1.0))[0]  # fmt: skip
    w = np.asarray(weights)[[0, 1, 2]]
    expected = sum(w[i] * ce[i, int(labels[i])] for i in range(3)) / w.sum()
    # here and below: float32 on both sides, 3 rows summed in another order and divided, a few
    # roundings of 6e-8 (measured equal); rel 1e-6 is 8 ulps
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    lam = 0.7
    mixed = engine.batch_loss(_Logits(logits), "ce", {}, {}, None, None, labels, valid, None,
                              0.0, (None, partner, lam))[0]  # fmt: skip
    expected = np.mean([lam * ce[i, int(labels[i])] + (1 - lam) * ce[i, int(partner[i])]
                        for i in range(3)])  # fmt: skip
    assert float(mixed) == pytest.approx(float(expected), rel=1e-6)
    plain = engine.batch_loss(_Logits(logits), "ce", {}, {}, None, None, labels, valid, None, 0.0)
    same = engine.batch_loss(_Logits(logits), "ce", {}, {}, None, None, labels, valid, None, 0.0,
                             (jnp.ones(3), None, 1.0))  # fmt: skip
    assert float(plain[0]) == pytest.approx(float(same[0]), rel=1e-6)  # w L = L, sum w = 3


def _hp(**options) -> engine.HParams:
    one = jnp.float32(0.0)
    return engine.HParams(one, one, one, jnp.int32(1), **options)


def test_masks_noise_and_mixup_stay_on_the_valid_frames_and_rows():
    rng = np.random.default_rng(0)
    lengths = jnp.array([10, 4, 7, 0])
    valid = lengths > 0
    frames = np.arange(12)[None, :] < np.asarray(lengths)[:, None]
    x = jnp.asarray(np.where(frames[..., None], rng.uniform(1, 2, (4, 12, 5)), 0.0), jnp.float32)
    labels = jnp.array([0, 1, 2, 3])
    key = jax.random.key(0)
    off = _hp(
        time_mask=jnp.int32(0),
        time_masks=jnp.int32(2),
        feature_mask=jnp.int32(0),
        feature_masks=jnp.int32(2),
        noise_std=jnp.float32(0),
        mixup_alpha=jnp.float32(0),
    )
    same, same_lengths, partner, lam = augment.augment(key, off, x, lengths, labels, valid)
    # off is an identity in float arithmetic (x + 0 noise, 1 x + 0 x'): exact
    assert np.array_equal(same, x) and np.array_equal(same_lengths, lengths) and lam == 1.0
    for seed in range(20):
        hp = _hp(time_mask=jnp.int32(3), time_masks=jnp.int32(2))
        masked = np.asarray(augment.augment(jax.random.key(seed), hp, x, lengths, labels,
                                           valid)[0])  # fmt: skip
        assert (masked[~frames] == 0).all()  # padding stays 0, masks stay within the lengths
        cut = (masked == 0).all(-1) & frames  # [B, T] masked frames
        assert (cut.sum(1) <= 2 * 3).all()  # two masks of at most 3 frames
        hp = _hp(feature_mask=jnp.int32(2), feature_masks=jnp.int32(1))
        features = np.asarray(augment.augment(jax.random.key(seed), hp, x, lengths, labels,
                                             valid)[0])  # fmt: skip
        assert ((features[:3] == 0).all(1).sum(1) <= 2).all()  # one mask of at most 2 features
        noisy = np.asarray(augment.augment(jax.random.key(seed), _hp(noise_std=jnp.float32(0.5)),
                                          x, lengths, labels, valid)[0])  # fmt: skip
        assert (noisy[~frames] == 0).all() and not np.array_equal(noisy, x)
        mixed, mixed_lengths, partner, lam = augment.augment(
            jax.random.key(seed), _hp(mixup_alpha=jnp.float32(0.4)), x, lengths, labels, valid
        )
        pairs = np.asarray(partner)[:3]  # the partners' labels (label i is row i)
        assert sorted(pairs) == [0, 1, 2] and 0 < lam < 1  # a permutation of the valid rows
        # float32, the same formula maybe fused otherwise: <= 2 roundings of values in [1, 2]
        np.testing.assert_allclose(mixed[:3], lam * x[:3] + (1 - lam) * x[pairs], rtol=1e-6)
        assert (np.asarray(mixed_lengths)[:3] == np.maximum(lengths[:3], lengths[pairs])).all()


def test_options_that_are_off_change_nothing_for_the_other_models_of_a_program(tiny_dataset):
    plain = train.RunSettings(**COMMON)
    everything = train.RunSettings(**COMMON, **OPTIONS)
    together = train.fit_group(tiny_dataset, [plain, everything], progress=False)
    # one-epoch chunks: the program of tests/test_train.py's group test and of the pruned
    # sweep trial (tests/test_sweeps.py), compiled once
    alone = train.fit(tiny_dataset, plain, progress=False, checkpoint_every=1)
    # Two programs: with the options anywhere in it, the program has the augmentation and
    # weighting code, which the plain models pass through with their off values. The losses
    # differ by rounding: <= 2 ulps after 3 epochs (4.8e-7 on 2.5; measured on an Intel Xeon;
    # 2 ulps on an AMD EPYC too, alone in one-epoch chunks or in one 3-epoch chunk), and rtol
    # 1e-5 is 84 ulps. UARs and predictions are counts, equal unless a prediction
    # flips: the smallest top-two logit gap of these models' validation and test rows is 1.2e-3,
    # against logits that differ by rounding (<= 3e-6 in tests/test_train.py's executors test).
    for r1, r2 in zip(together[0]["runs"], alone["runs"], strict=True):
        np.testing.assert_allclose(r1["val_uar"], r2["val_uar"], atol=1e-6)
        np.testing.assert_allclose(r1["train_loss"], r2["train_loss"], rtol=1e-5)
        p1, p2 = dict(r1["test_predictions"]), dict(r2["test_predictions"])
        # the class probabilities: softmaxes of logits that differ by rounding (<= 3e-6),
        # written with 6 decimals (+-5e-7 each): 2e-5 bounds both with room
        np.testing.assert_allclose(p1.pop("probabilities"), p2.pop("probabilities"), atol=2e-5)
        assert p1 == p2
        assert "trained_epochs" not in r1
    assert [r["train_loss"] for r in together[1]["runs"]] != [r["train_loss"]
                                                             for r in alone["runs"]]  # fmt: skip
    assert together[1]["settings"]["mixup_alpha"] == 0.4


def test_early_stopping_freezes_each_model_and_stops_when_all_are_frozen(tiny_dataset):
    settings = train.RunSettings(**{**COMMON, "epochs": 40, "learning_rate": 3e-2}, patience=2)
    results = train.fit(tiny_dataset, settings, progress=False, report_every=4)
    assert results["stopped_at_epoch"] < 40  # every model froze: the program stopped
    for r in results["runs"]:
        trained = r["trained_epochs"]
        assert trained == min(results["stopped_at_epoch"], r["best_epoch"] + 1 + 2)
        loss = np.asarray(r["train_loss"], np.float64)
        stop = results["stopped_at_epoch"]
        assert np.isfinite(loss[:trained]).all() and np.isnan(loss[trained:stop]).all()
        # a frozen model keeps its parameters: its validation UAR stays where it was (the
        # same parameters through the same program: exactly)
        assert set(r["val_uar"][trained - 1 : stop]) == {
            r["val_uar"][trained - 1]}  # fmt: skip
        assert r["diverged_at_epoch"] is None


@pytest.mark.parametrize(
    "flags,field,value",
    [(["--class-weights", "balanced"], "class_weights", "balanced"),
     (["--patience", "5"], "patience", 5),
     (["--time-mask", "20", "--time-masks", "1"], "time_masks", 1),
     (["--feature-mask", "4"], "feature_mask", 4),
     (["--noise-std", "0.1"], "noise_std", 0.1),
     (["--mixup-alpha", "0.2"], "mixup_alpha", 0.2)],
)  # fmt: skip
def test_train_flags_reach_the_settings(flags, field, value):
    from reslstm_jax.train.__main__ import build_parser, checked_flags

    args = build_parser().parse_args(["--out", "x", *flags])
    assert getattr(checked_flags(args)[0], field) == value


@pytest.mark.parametrize(
    "flags,message",
    [(["--patience", "-1"], "--patience: must be an integer in [0, 2147483647], got -1"),
     (["--time-masks", "9"], "--time-masks: must be an integer in [1, 4], got 9"),
     (["--noise-std", "nan"], "--noise-std: must be a finite number in [0, 3.40282e+38], got nan"),
     (["--mixup-alpha", "-0.5"], "--mixup-alpha: must be a number in [0, 3.40282e+38], got -0.5")],
)  # fmt: skip
def test_bad_option_values_are_refused(flags, message, capsys):
    """At parse time, by the flag's range (`flags.RANGES`); RunSettings refuses the same
    values from Python (`test_train.py::test_run_settings_validation`)."""
    from reslstm_jax.train.__main__ import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--out", "x", *flags])
    assert exited.value.code == 2 and message in capsys.readouterr().err
