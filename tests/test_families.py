"""Model families (reslstm_jax.families) in the trainer: recipes, schedules, focal loss, loss
heads and penalties, the fields a run may set, multi-array data, the DS-LSTM features and the
reproduction protocols."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from reslstm_jax import data, families, features, protocols, train
from reslstm_jax.corpora.base import Manifest, Utterance
from reslstm_jax.models.base import ModelBase


@pytest.mark.parametrize(
    ("epoch", "factor"),
    [(0, 1.0), (9, 1.0), (10, 0.5), (19, 0.5), (20, 0.25), (29, 0.25), (30, 0.125), (49, 0.125)],
)
def test_multistep_is_ds_lstms_schedule(epoch, factor):
    lr = train.learning_rate_at("multistep", 1e-3, 10, jnp.int32(epoch))
    # float32 against the float64 value: 1e-3 rounds to float32 within eps32 / 2 = 6e-8 of it
    # (the factors are powers of 2); approx's default rel 1e-6 is 17x that
    assert float(lr) == pytest.approx(1e-3 * factor)


@pytest.mark.parametrize(("epoch", "k"), [(0, 0), (59, 0), (60, 1), (79, 1), (80, 2), (299, 12)])
def test_exp_decay_is_light_sernets_schedule(epoch, k):
    lr = train.learning_rate_at("exp_decay", 1e-4, 10, jnp.int32(epoch))
    # float32 exp and product against float64: a few float32 ulps (1.2e-7; measured <= 5.3e-8);
    # 1e-6 is 8 of them, and one step of the decay is a factor 0.86
    assert float(lr) == pytest.approx(1e-4 * math.exp(-0.15 * k), rel=1e-6)


def test_focal_and_cross_entropy_per_row():
    logits = jnp.array([[2.0, 0.0], [0.0, 30.0]])
    labels = jnp.array([0, 1])
    p = math.exp(2) / (math.exp(2) + 1)
    ce = train.per_row_loss("ce", logits, labels)
    focal = train.per_row_loss("focal", logits, labels)
    # float32 against float64. Cross-entropy is log(1 + e^-2) = 0.127 (the logits shifted by
    # their max): a few float32 ulps of it (1.2e-7; measured 2.8e-7), and 1e-5 is 84 ulps.
    assert float(ce[0]) == pytest.approx(-math.log(p), rel=1e-5)
    # In focal, 1 - p = 0.12 cancels from p = 0.88 and log(p) from 1: p's rounding grows 7x in
    # 1 - p, 15x in its square, 7x in log(p): up to ~5e-6 (measured 1.4e-6); 3e-5 bounds it.
    assert float(focal[0]) == pytest.approx((1 - p) ** 2 * -math.log(p), rel=3e-5)
    # A certain prediction: probabilities are clipped at 1 - 1e-7 as Keras does, in float32:
    # 1 - 2^-23. abs=0, for approx's default abs of 1e-12 passes any value this small (0, the
    # unclipped loss, too); rel 1e-5 allows float32's log of the clip a few ulps.
    clip = float(np.float32(1 - 1e-7))
    assert float(focal[1]) == pytest.approx((1 - clip) ** 2 * -math.log(clip), rel=1e-5, abs=0)


@dataclasses.dataclass(frozen=True)
class TwoHeads(ModelBase):
    """A tiny model with the protocol's optional parts: two heads and an L2 penalty."""

    name: str = "two_heads"
    num_classes: int = 3
    l2: float = 0.5

    def init(self, key):
        k1, k2 = jax.random.split(key)
        return {"params": {"a": jax.random.normal(k1, (2, 3)), "b": jax.random.normal(k2, (2, 3))},
                "batch_stats": {}}  # fmt: skip

    def apply(self, variables, x, lengths, *, train=False, key=None, dropout_rate=None):
        pooled = x.sum(1) / jnp.maximum(lengths, 1)[:, None]
        heads = {"a": pooled @ variables["params"]["a"], "b": pooled @ variables["params"]["b"]}
        logits = 0.3 * heads["a"] + 0.7 * heads["b"]
        return ((logits, heads), {}) if train else (logits, heads)

    def loss_heads(self, logits, aux):
        return [(0.3, aux["a"]), (0.7, aux["b"])]

    def penalty(self, params):
        return self.l2 * jnp.sum(jnp.square(params["a"]))


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_trainer_sums_weighted_heads_and_adds_the_models_penalty(loss):
    model = TwoHeads()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 2)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    lengths = np.full(6, 4, np.int32)
    program = train.make_train(train.TrainConfig(model=model, batch_size=8, executor="vmap",
                                                 loss=loss))  # fmt: skip
    hp = train.HParams(learning_rate=jnp.zeros(1), weight_decay=jnp.zeros(1),
                       dropout=jnp.zeros(1), t0=jnp.ones(1, jnp.int32))  # fmt: skip
    rows = jnp.arange(6, dtype=jnp.int32)[None]
    mask = jnp.ones((1, 6), bool)
    md = train.ModelData(train=rows, train_mask=mask, val=rows, val_mask=mask, test=rows,
                         test_mask=mask, mean=jnp.zeros((1, 2)), std=jnp.ones((1, 2)))  # fmt: skip
    shared = train.Shared(jnp.asarray(x), jnp.asarray(lengths), jnp.asarray(labels))
    keys = jax.random.key_data(jax.random.split(jax.random.key(0), 1))
    state = program.init(keys, hp)
    _, history = program.run(state, hp, md, shared, epochs=1)
    params = jax.tree_util.tree_map(lambda a: a[0], state.params)
    _, heads = model.apply({"params": params, "batch_stats": {}}, jnp.asarray(x), lengths)
    expected = sum(w * train.per_row_loss(loss, heads[k], jnp.asarray(labels)).mean()
                   for w, k in ((0.3, "a"), (0.7, "b")))  # fmt: skip
    expected += model.penalty(params)
    # a float32 loss of ~3 from the training program and from here, in other orders: sums of
    # 6 rows, 2 heads and a penalty, a few float32 ulps (measured <= 7.7e-8); 1e-5 is 84 ulps
    assert float(history["train_loss"][0, 0]) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize(
    ("family", "shapes", "classes", "params"),
    [
        ("light_sernet", {"x": (184, 40)}, 7, 461_703),
        ("ds_lstm", {"a": (230, 128), "b": (120, 256), "mfcc": (300, 39)}, 4, 3_732_296),
        ("reslstm_sa", {"x": (87, 46)}, 8, 46_772),
    ],
)
def test_models_take_their_input_sizes_from_the_data(family, shapes, classes, params):
    from reslstm_jax.params import param_count

    model = families.build_model(family, shapes, classes)
    assert param_count(model) == params
    assert families.recipe(family).features in features.names()


def test_a_family_refuses_the_wrong_features():
    with pytest.raises(ValueError, match="ds_lstm needs the ds_lstm_inputs features"):
        families.build_model("ds_lstm", {"x": (10, 46)}, 4)
    with pytest.raises(ValueError, match="reads one feature sequence"):
        families.build_model("light_sernet", {"a": (1, 2), "b": (1, 2)}, 4)
    with pytest.raises(ValueError, match="unknown model family 'resnet'"):
        families.get("resnet")


@pytest.mark.parametrize("family", families.names())
def test_settings_from_takes_the_recipe_then_the_overrides(family):
    recipe = families.recipe(family)
    default = families.settings_from(family)
    assert (default.epochs, default.batch_size, default.schedule, default.loss) == (
        recipe.epochs, recipe.batch_size, recipe.schedule, recipe.loss)  # fmt: skip
    assert default.model_config == ()
    field, value = next(iter(families.get(family).fields.items()))
    changed = families.settings_from(family, {"epochs": 3, "learning_rate": None, field: value})
    assert changed.epochs == 3 and changed.learning_rate == recipe.learning_rate
    assert changed.model_config == ((field, value),)


@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("light_sernet", {"hidden_size": 8}, "hidden_size is not a field of light_sernet"),
        ("lstm_sa", {"branches": "ds"}, "branches is not a field of lstm_sa"),
        ("ds_lstm", {"input_size": 8}, "input_size is not a field of ds_lstm"),  # data decides
        ("reslstm_sa", {"name": "x"}, "name is not a field of reslstm_sa"),
        ("reslstm_sa", {"hidden_size": 0}, "hidden_size must be a positive integer"),
        ("lstm_sa", {"res_blocks": 2}, "lstm_sa has no residual blocks"),
        ("reslstm_sa", {"epochs": 0}, "epochs must be >= 1"),
    ],
)
def test_settings_from_refuses_undeclared_fields_and_bad_values(family, overrides, message):
    with pytest.raises(ValueError, match=message):
        families.settings_from(family, overrides)


def test_multi_array_features_are_stacked_and_padded():
    feats = [{"a": np.ones((3, 2)), "mfcc": np.ones((n, 4))} for n in (5, 9)]
    x, lengths, frames, truncated = data.stack_multi(feats, multiple=8, max_frames=None)
    assert x["a"].shape == (2, 3, 2) and x["mfcc"].shape == (2, 16, 4)
    assert lengths.tolist() == [5, 9] and frames == 16 and truncated == 0
    assert x["mfcc"][0, 5:].sum() == 0  # padded frames: zeros
    with pytest.raises(ValueError, match="differs in shape"):
        data.stack_multi([{"a": np.ones((3, 2))}, {"a": np.ones((4, 2))}], 8, None)


def test_ds_lstm_features(tmp_path):
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    mfcc = features.get("mfcc39")(tmp_path / "a.wav")
    # librosa frames n_fft = 512 samples (the 400-sample Hamming window inside), no centring
    assert mfcc.shape == (1 + (16000 - 512) // 160, 39) and np.isfinite(mfcc).all()
    out = features.get("ds_lstm_inputs")(tmp_path / "a.wav")
    assert {k: v.shape for k, v in out.items()} == {"a": (230, 128), "b": (120, 256),
                                                    "mfcc": mfcc.shape}  # fmt: skip
    # the same Mfcc39.from_signal on the same samples (16 kHz audio: no resampling): equal
    np.testing.assert_array_equal(out["mfcc"], mfcc)


def _manifest(corpus: str, speakers: list[str], per: int = 6) -> Manifest:
    utterances = [Utterance(id=f"{s}-{i}", path=f"/x/{s}-{i}.wav", corpus=corpus, speaker=s,
                            label=i % 2, emotion="ab"[i % 2])
                  for s in speakers for i in range(per)]  # fmt: skip
    return Manifest(corpus, "/x", ("a", "b"), utterances)


@pytest.mark.parametrize(
    ("name", "corpus", "speakers", "n_folds"),
    [
        ("emodb_random10", "emodb", ["03", "08", "09", "10"], 10),
        ("iemocap_random5", "iemocap", ["Ses01F", "Ses01M", "Ses02F"], 5),
    ],
)
def test_reproduction_protocols_are_speaker_dependent_select_on_test_and_say_so(
    name, corpus, speakers, n_folds
):
    m = _manifest(corpus, speakers)
    folds = protocols.make_folds(name, m)
    assert len(folds) == n_folds
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(m)))
    for f in folds:
        assert np.array_equal(f.val, f.test) and not np.intersect1d(f.train, f.test).size
        assert f.speaker_dependent and f.val_is_test
    assert protocols.make_folds(name, m)[0].test.tolist() == folds[0].test.tolist()  # seeded
    card = protocols.card(name, m, folds)
    assert "speaker-dependent" in card["leaky"] and card["folds"][0]["val_is_test"]
    assert "LEAKY" in protocols.format_card(card)


def test_only_a_leaky_protocol_may_build_speaker_dependent_folds():
    m = _manifest("emodb", ["03", "08"])
    folds = protocols.random_folds(m, 3, seed=0, val_is_test=True)
    with pytest.raises(protocols.LeakageError, match="need a protocol registered as leaky"):
        protocols.audit(m, folds, "sneaky")
    protocols.audit(m, folds, "declared", leaky=True)
