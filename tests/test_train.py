"""The training engine: schedule, optimiser, gating, executors, determinism, selection."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numerics import assert_rounding_close

import reslstm_jax as rj
from reslstm_jax import families, train

N, T, D, C = 48, 12, 46, 4


@functools.cache
def shared() -> train.Shared:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, T + 1, N).astype(np.int32)
    labels = (np.arange(N) % C).astype(np.int32)
    x = rng.standard_normal((N, T, D)).astype(np.float32) + 0.8 * labels[:, None, None]
    x = np.where(np.arange(T)[None, :, None] < lengths[:, None, None], x, 0).astype(np.float32)
    return train.Shared(jnp.asarray(x), jnp.asarray(lengths), jnp.asarray(labels))


def folds(width: int | None = None):
    """Two folds; fold 1 has fewer training rows. `width` pads every index array."""
    idx = np.arange(N)
    parts = [(idx[:32], idx[32:40], idx[40:]), (idx[24:44], idx[:8], idx[8:24])]
    return [
        tuple(np.pad(p, (0, (width or len(p)) - len(p))) for p in fold)
        + tuple(np.arange(width or len(p)) < len(p) for p in fold)
        for fold in parts
    ]


def model_data(fold_list, pad_train_to: int | None = None) -> train.ModelData:
    def stack(i):
        arrays = [f[i] for f in fold_list]
        width = max(len(a) for a in arrays)
        if i in (0, 3) and pad_train_to:
            width = pad_train_to
        return jnp.asarray(np.stack([np.pad(a, (0, width - len(a))) for a in arrays]))

    m = len(fold_list)
    return train.ModelData(
        train=stack(0), train_mask=stack(3), val=stack(1), val_mask=stack(4),
        test=stack(2), test_mask=stack(5),
        mean=jnp.zeros((m, D)), std=jnp.ones((m, D)),
    )  # fmt: skip


def hparams(m: int, lr=1e-2, wd=1e-3, dropout=0.2, t0=3) -> train.HParams:
    return train.HParams(
        jnp.full(m, lr, jnp.float32), jnp.full(m, wd, jnp.float32),
        jnp.full(m, dropout, jnp.float32), jnp.full(m, t0, jnp.int32),
    )  # fmt: skip


def program(executor="vmap", chunk=1, **model):
    config = dict(hidden_size=8, num_classes=C, **model)
    return train.make_train(
        train.TrainConfig(model=rj.models.get("reslstm_sa", **config), batch_size=8,
                          executor=executor, map_chunk=chunk)
    )  # fmt: skip


def run(prog, fold_list, epochs=4, keys=None, pad_train_to=None):
    """(state, history {key: [M, epochs]}, predictions): `epochs` in chunks of 4, the chunk
    every test here compiles (a program's epoch count is static), as the fit loop chunks."""
    data = model_data(fold_list, pad_train_to)
    m = data.train.shape[0]
    keys = keys if keys is not None else jnp.stack([train.model_key(0, k) for k in range(m)])
    state, chunks = prog.init(keys, hparams(m)), []
    for start in range(0, epochs, 4):
        state, chunk = prog.run(state, hparams(m), data, shared(), epochs=min(4, epochs - start))
        chunks.append(chunk)
    history = jax.tree_util.tree_map(lambda *c: jnp.concatenate(c, axis=1), *chunks)
    return state, history, prog.predict(state, data, shared())


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# ----------------------------------------------------------------------------- schedule, Adam


# float32 against float64: the phase, pi * phase and the cosine each round on the scale of lr
# (the rate lies in [0.01 lr, lr]), so the error is a few ulps of lr, not of the rate: at the
# bottom of a cycle (0.034 lr at T_0 = 10) a relative 1e-6 leaves 0.3 ulps of lr. Measured <= 0.91
# ulps of lr (Intel Xeon); 8 allowed. An eta_min of 0.0101 lr instead moves the bottom by 1e-4 lr.
SCHEDULE_ABS = 8 * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("t0", [1, 2, 3, 5, 10])
def test_cosine_warm_restarts_closed_form(t0):
    lr = 3e-3
    for epoch in range(25):
        expected = 0.01 * lr + (lr - 0.01 * lr) * (1 + math.cos(math.pi * (epoch % t0) / t0)) / 2
        got = float(train.cosine_warm_restarts(jnp.float32(lr), jnp.int32(t0), jnp.int32(epoch)))
        assert got == pytest.approx(expected, rel=0, abs=SCHEDULE_ABS * lr)


def test_schedule_corner_cases():
    """T_0 = 1 is a constant rate; T_0 = 2 alternates lr and 0.505 lr (spec §8)."""
    # float32 values (0.505 is 0.50499999523): approx's default rel 1e-6 is 20 float32 roundings
    values = [float(train.cosine_warm_restarts(1.0, 1, e)) for e in range(4)]
    assert values == pytest.approx([1.0] * 4)
    values = [float(train.cosine_warm_restarts(1.0, 2, e)) for e in range(4)]
    assert values == pytest.approx([1.0, 0.505, 1.0, 0.505])


def test_adam_with_coupled_l2_is_torch_adam():
    """Two steps against torch.optim.Adam(lr, weight_decay=wd), written out by hand."""
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
    theta = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.1, -0.2, 0.3]), np.array([-0.05, 0.4, 0.0])]
    params = {"w": jnp.asarray(theta, jnp.float32)}
    opt_state = train.with_hyperparams(train.OPTIMIZER.init(params), lr, wd)
    m = v = np.zeros(3)
    for t, g in enumerate(grads, start=1):
        g_l2 = g + wd * theta  # coupled: decay enters the gradient
        m = b1 * m + (1 - b1) * g_l2
        v = b2 * v + (1 - b2) * g_l2**2
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        theta = theta - lr / (1 - b1**t) * m / denom
        updates, opt_state = train.OPTIMIZER.update({"w": jnp.asarray(g, jnp.float32)},
                                                    opt_state, params)  # fmt: skip
        params = optax.apply_updates(params, updates)
        # optax in float32: 1 - 0.999^t uses float32's 0.999 (1.3e-8 high), 1.3e-5 of itself at
        # t = 1, so each step is 6.4e-6 of lr short (sqrt): <= 1.3e-7 after two (measured
        # 1.2e-7) plus theta's own float32 rounding, within 1e-7 + 1e-6 |theta| (>= 6e-7 here)
        np.testing.assert_allclose(params["w"], theta, rtol=1e-6, atol=1e-7)


def test_adam_is_not_adamw():
    """With zero gradient, coupled L2 moves parameters through Adam's normalisation."""
    params = {"w": jnp.array([1.0])}
    state = train.with_hyperparams(train.OPTIMIZER.init(params), 0.1, 0.5)
    updates, _ = train.OPTIMIZER.update({"w": jnp.array([0.0])}, state, params)
    # AdamW would give -lr * wd * w = -0.05; Adam on g = wd * w gives -lr * sign = -0.1, in
    # float32 6.7e-6 short (the bias correction's 1 - 0.999 in float32, test above): rtol 1e-4
    np.testing.assert_allclose(updates["w"], [-0.1], rtol=1e-4)


# ----------------------------------------------------------------------------- program


# Two programs of the same training (another executor, the model alone or stacked, a mesh) reorder
# each step's sums: packing moves a gradient by <= 13 ulps of its leaf (tests/test_models.py). Adam
# then divides each element's step by that element's own gradient size, so an element whose gradient
# is a near-cancelling sum (a large relative rounding) carries that relative error into a step of
# size lr: after the first epoch (4 steps) a weight leaf already differs by 159 ulps of its scale
# between the executors and by 286 between a model alone and stacked (measured on an Intel Xeon with
# AVX-512, where the per-element rtol 1e-4 + atol 1e-5 used before held with only a factor of 1.9
# and 1.3 to spare), and little more after 4 epochs (8 epochs: <= 1081, in Adam's first moment).
# 4096 ulps (4.9e-4 of a leaf's scale) holds that 14 times over. Real changes are far beyond it: a
# learning rate 0.1% higher moves the weights by 9e4 ulps, a dropout of 0.21 by 2e6, one epoch less
# by 4e6, another key by 1.5e7. The histories' losses differ by <= 1.1 ulps (3.2 after 8 epochs).
# Validation UARs and predictions are counts: a flipped prediction moves a UAR by >= 1/8 (1e6 ulps)
# and integer leaves must be equal. None flips: the smallest top-two logit gap of the compared
# predictions is 0.024, and the two programs' logits differ by <= 3e-6.
TRAINING_ULPS = 4096


def test_executors_give_identical_results():
    # row_block 4 < batch 8: `map` runs the packed LSTMs, `vmap` and chunks of 2 unpacked ones
    # (train.model_for_executor): packing changes results only by float rounding.
    results = [run(program(ex, chunk, row_block=4), folds()) for ex, chunk in
               [("vmap", 1), ("map", 1), ("map", 2)]]  # fmt: skip
    base = results[0]
    for other, name in zip(results[1:], ["map", "map_chunk 2"], strict=True):
        # state, histories and predictions (integers: equal) within `TRAINING_ULPS`
        assert_rounding_close(other, base, ulps=TRAINING_ULPS, err_msg=f"{name} against vmap")


@pytest.mark.parametrize(
    "executor, chunk, row_block, expected",
    [("map", 1, 4, 4), ("map", 2, 4, None), ("vmap", 1, 4, None), ("vmap", 1, None, None)],
)
def test_batched_executors_run_unpacked_models(executor, chunk, row_block, expected):
    model = rj.models.get("reslstm_sa", hidden_size=8, row_block=row_block)
    assert train.model_for_executor(model, executor, chunk).row_block == expected
    ds_lstm = rj.models.get("ds_lstm")  # no packing setting: unchanged
    assert train.model_for_executor(ds_lstm, executor, chunk) is ds_lstm


def test_single_model_run_equals_its_row_in_a_stacked_run():
    """M = 1 equals the same model inside M = 2, where the other fold pads its arrays wider."""
    stacked = run(program("vmap"), folds())
    keys = jnp.stack([train.model_key(0, 1)])
    alone = run(program("vmap"), folds()[1:], keys=keys)

    def row(tree, m):
        return jax.tree_util.tree_map(lambda a: a[m], tree)

    # M = 1 is a plain call and M = 2 a vmap: two programs, rounding (`TRAINING_ULPS`)
    assert_rounding_close(row(stacked[:2], 1), row(alone[:2], 0), ulps=TRAINING_ULPS)
    np.testing.assert_array_equal(stacked[2]["test"][1][:16], alone[2]["test"][0])


def test_surplus_steps_are_gated_off():
    """Padding the training index array (more steps, all empty) changes nothing at all."""
    base = run(program("vmap"), folds())
    padded = run(program("vmap"), folds(), pad_train_to=64)  # 8 steps instead of 4
    # Exact: every step is the same compiled computation (the optimised HLO of the two programs
    # differs only in the index arrays' width and the scan's length), and the surplus steps
    # are selected away with `where`. Only the epoch's mean loss sums 8 step losses (4 of them
    # 0) instead of 4, which XLA may add in another order: <= 3 ulps of the sum.
    loss = "train_loss"
    assert_rounding_close(padded[1][loss], base[1][loss], ulps=4)
    for a, b in zip(leaves((base[0], base[1]["val_uar"], base[2])),
                    leaves((padded[0], padded[1]["val_uar"], padded[2])), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    # Adam's step count: 4 batches per epoch for fold 0, 3 for fold 1 (20 rows), x 4 epochs
    counts = jax.tree_util.tree_leaves(padded[0].opt_state.inner_state)[0]
    np.testing.assert_array_equal(np.asarray(counts), [16, 12])


def test_bit_identical_reruns():
    # the same program on the same inputs: exact (row_block 4: the executors test's map
    # program, compiled once for both)
    first = run(program("map", row_block=4), folds())
    second = run(program("map", row_block=4), folds())
    for a, b in zip(leaves(first), leaves(second), strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_learns_and_selection_keeps_the_best_epoch():
    state, history, predictions = run(program("vmap"), folds(), epochs=8)
    val_uar = np.asarray(history["val_uar"])
    best = np.asarray(state.best_epoch)
    for m in range(2):
        # strictly greater: the first epoch reaching the maximum is kept
        assert best[m] == int(np.argmax(val_uar[m]))
        # the best epoch's own float32 value, kept with `where`: equal
        assert float(state.best_val_uar[m]) == val_uar[m].max()
    assert val_uar.max(1).min() > 0.5  # 4 separable classes: well above chance (0.25)
    loss = np.asarray(history["train_loss"])
    assert np.all(loss[:, -1] < loss[:, 0])
    labels = np.asarray(shared().labels)
    test_rows = np.arange(40, 48)
    assert np.mean(np.asarray(predictions["test"][0])[:8] == labels[test_rows]) > 0.5


def test_seeds_are_independent_unless_shared_like_the_reference():
    assert not np.array_equal(train.model_key(0, 1), train.model_key(1, 1))
    assert not np.array_equal(train.model_key(0, 0), train.model_key(0, 1))
    np.testing.assert_array_equal(
        train.model_key(0, 3, share_across_seeds=True),
        train.model_key(7, 3, share_across_seeds=True),
    )


def test_uar_in_the_program_equals_the_metrics_module():
    from reslstm_jax import metrics

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    y[y == 3] = 0  # an absent class is excluded in both
    mask = np.ones(40, bool)
    mask[-5:] = False
    got = float(train.uar_from_predictions(jnp.asarray(y), jnp.asarray(p), jnp.asarray(mask), 5))
    # float32 against float64: 4 recalls, their sum and the mean, <= 6 roundings of 6e-8 (3.6e-7;
    # measured 1.7e-8); any other count of hits moves it by >= 1/40
    assert got == pytest.approx(metrics.classification(y[mask], p[mask], 5)["uar"], rel=1e-6)


@pytest.mark.parametrize(
    "start,total,every,save_every,expected",
    [(0, 10, 4, None, [4, 4, 2]), (4, 10, 4, None, [4, 2]), (5, 10, 4, None, [3, 2]),
     (10, 10, 4, None, []), (0, 3, 10, None, [3]),
     # reporting every epoch, saving every 4: chunks still end where saves fall
     (0, 6, 1, 4, [1] * 6), (0, 10, 3, 4, [3, 1, 2, 2, 1, 1]), (4, 10, 4, 5, [1, 3, 2]),
     # a sweep trial of the quick budget (10 epochs): progress at every epoch, one save
     (0, 10, 1, 10, [1] * 10), (0, 100, 10, 10, [10] * 10)],
)  # fmt: skip
def test_chunk_lengths(start, total, every, save_every, expected):
    assert train.chunk_lengths(start, total, every, save_every) == expected


@pytest.mark.parametrize(
    "kwargs,message",
    [({"epochs": 0}, "epochs must be >= 1"), ({"dropout": 1.0}, "dropout must be in"),
     ({"t0": 0}, "T_0 must be >= 1"), ({"seeds": (1, 1)}, "seeds repeat"),
     ({"learning_rate": 0.0}, "learning rate must be > 0"),
     # non-finite values are refused before anything trains (inf trained to NaN losses)
     ({"learning_rate": float("inf")}, "learning rate must be a finite number, got inf"),
     ({"weight_decay": float("nan")}, "weight decay must be a finite number, got nan"),
     ({"dropout": float("-inf")}, "dropout must be a finite number"),
     # finite, but beyond what the float32 / int32 program represents
     ({"learning_rate": 1e308}, r"learning rate must be a float32 number \(\|x\| <= 3.403e\+38\)"),
     ({"mixup_alpha": 1e39}, "mixup alpha must be a float32 number"),
     ({"noise_std": 1e308}, "noise std must be a float32 number"),
     ({"epochs": 2**31}, "epochs must be at most 2147483647 \\(int32\\), got 2147483648"),
     ({"batch_size": 2**40}, "batch size must be at most 2147483647"),
     ({"matmul_precision": "tf32"}, "matmul precision must be one of default, high, highest")],
)  # fmt: skip
def test_run_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train.RunSettings(**kwargs)


@pytest.mark.parametrize(
    "model_config,precision,expected",
    [((), "default", "default"), ((), "high", "high"),
     # parity mode must match the float32 reference on every backend (no TF32)
     ((("paper_compat", True),), "default", "highest")],
)  # fmt: skip
def test_matmul_precision_of_a_run(model_config, precision, expected):
    from reslstm_jax.train.fit import checkpoint_settings

    settings = train.RunSettings(model_config=model_config, matmul_precision=precision)
    assert settings.precision() == expected
    assert settings.static_signature()[-1] == expected  # another precision: another program
    # the default leaves checkpoint fingerprints as earlier versions wrote them (they resume)
    assert ("matmul_precision" in checkpoint_settings(settings)) is (precision != "default")


def test_a_group_of_configurations_equals_each_trained_alone(tiny_dataset):
    """Trials sharing a static shape train in one program with their own hyperparameters."""
    dataset = tiny_dataset
    # tests/test_training_options.py's COMMON: the configurations alone are its plain program
    common = dict(model_config=(("hidden_size", 4),), seeds=(0,), epochs=3, batch_size=8,
                  executor="map")  # fmt: skip
    a = train.RunSettings(learning_rate=1e-2, dropout=0.1, **common)
    b = train.RunSettings(learning_rate=3e-3, weight_decay=0.0, t0=2, **common)
    # one-epoch chunks (both): alone, the program of the options and pruned-trial tests
    together = train.fit_group(dataset, [a, b], progress=False, checkpoint_every=1)
    alone = [train.fit(dataset, s, progress=False, checkpoint_every=1) for s in (a, b)]
    for grouped, single in zip(together, alone, strict=True):
        assert grouped["models_in_program"] == 10 and single["models_in_program"] == 5
        for r1, r2 in zip(grouped["runs"], single["runs"], strict=True):
            # Exact: the map executor runs every model through one compiled loop body, and M
            # sets only its trip count (the optimised HLO of M = 3 and M = 7 differs in the
            # trip count alone); the hyperparameters are inputs of that body
            np.testing.assert_array_equal(r1["val_uar"], r2["val_uar"])
            np.testing.assert_array_equal(r1["train_loss"], r2["train_loss"])
            assert r1["test_predictions"] == r2["test_predictions"]
    assert together[0]["runs"][0]["train_loss"] != together[1]["runs"][0]["train_loss"]
    with pytest.raises(ValueError, match="a group must share"):
        train.fit_group(dataset, [a, dataclasses.replace(b, batch_size=4)], progress=False)


@pytest.mark.parametrize("executor", ["map", "vmap"])
def test_models_are_initialised_one_at_a_time_by_one_program(executor):
    """`init_each`: one program of one model whatever M (compiled once for M = 2 and 3), the
    same bits as one program over the model axis with the map executor (its init before)."""
    from reslstm_jax.train import engine

    prog = program(executor)
    keys = jnp.stack([train.model_key(0, k) for k in range(3)])
    three, two = prog.init(keys, hparams(3)), prog.init(keys[:2], hparams(2))
    assert prog.init_one._cache_size() == 1
    for a, b in zip(leaves(two), leaves(three), strict=True):
        np.testing.assert_array_equal(a, b[:2])  # a model's state does not depend on M
    fns = engine.make_train(prog.config)
    over_models = jax.jit(lambda k, h: jax.lax.map(lambda a: fns.init(*a), (k, h)))
    for a, b in zip(leaves(three), leaves(over_models(keys, hparams(3))), strict=True):
        np.testing.assert_array_equal(a, b)


def _config(**fields):
    model = rj.models.get("reslstm_sa", hidden_size=8, num_classes=C)
    return train.TrainConfig(**{"model": model, "batch_size": 8, "executor": "map", **fields})


@pytest.mark.parametrize(("first", "second", "same"), [
    (_config(), _config(), True),  # equal, built apart: the program and what it compiled
    (_config(), _config(batch_size=4), False),
    (_config(), _config(executor="vmap"), False),
    (_config(adam_eps=1), _config(adam_eps=1.0), False),  # equal and one hash, not one type
    # a model configuration that cannot be hashed: built anew every time
    (_config(model=dataclasses.make_dataclass("Unhashable", [])()),
     _config(model=dataclasses.make_dataclass("Unhashable", [])()), False),
])  # fmt: skip
def test_an_equal_configuration_gets_the_program_built_before(first, second, same):
    """A sweep worker builds a program per trial group: one of a shape it trained before must
    not compile again (a new jitted function compiles anew whatever it computes)."""
    assert (train.make_train(first) is train.make_train(second)) is same


def test_the_programs_kept_are_the_last_used(monkeypatch):
    from reslstm_jax.train import stacking

    monkeypatch.setattr(stacking, "_programs", type(stacking._programs)())
    monkeypatch.setattr(stacking, "PROGRAM_CACHE_SIZE", 2)
    a, b, c = (_config(batch_size=size) for size in (2, 3, 4))
    first_a, first_b = train.make_train(a), train.make_train(b)
    assert train.make_train(a) is first_a  # a is now the last used: b goes first
    train.make_train(c)
    assert train.make_train(a) is first_a
    assert train.make_train(b) is not first_b
    assert len(stacking._programs) == 2


def test_models_split_over_devices_come_back_in_order():
    """`across_devices` on one device named twice: shares of 2 for M = 3, the filler dropped.
    (Two real CPU devices train bit for bit as one: tests/test_train_cli.py.)"""
    device = jax.local_devices()[0]
    calls = []

    def fn(a, b, shared, *, scale):
        calls.append((a.shape, b["x"].shape, shared.shape))
        return {"y": a * scale + b["x"] + shared.sum()}, a[:, 0]

    split = train.across_devices(fn, [device, device], model_args=2)
    a = np.arange(6.0).reshape(3, 2)
    out, first = split(a, {"x": np.ones((3, 2))}, np.ones(4), scale=10.0)
    assert sorted(calls) == [((2, 2), (2, 2), (4,))] * 2
    np.testing.assert_array_equal(out["y"], a * 10 + 1 + 4)  # small integers: exact
    np.testing.assert_array_equal(first, a[:, 0])


# The mesh and wave tests share one configuration (one-epoch chunks): its one-device program
# is compiled once for all of them.
SMALL = {"hidden_size": 4, "seeds": (0,), "epochs": 2, "batch_size": 8, "executor": "map"}


@pytest.fixture(scope="module")
def one_wave(tiny_dataset):
    """`SMALL` trained on one device, all 5 folds in one program."""
    return train.fit(tiny_dataset, families.settings_from("lstm_sa", SMALL), progress=False,
                     checkpoint_every=1)  # fmt: skip


# Two CPU devices need a fresh process (the device count is fixed when JAX starts).
MESH_RUN = """
import json, sys
from reslstm_jax import hardware
assert hardware.use_cpu_cores(2) == 2
import jax, numpy as np
sys.path.insert(0, "tests")
from conftest import _random_feature_dataset
from reslstm_jax import families, train

dataset = _random_feature_dataset()  # 5 folds: M = 5 on 2 devices, 3 + 3 with one filler
small = json.loads(sys.argv[1])
settings = families.settings_from("lstm_sa", {**small, "seeds": tuple(small["seeds"])})
result = train.fit(dataset, settings, progress=False, devices=2, device_split="mesh",
                   out_dir=sys.argv[2], checkpoint_every=1)
program = train.make_train(train.TrainConfig(
    model=train.results.model_of(result), batch_size=8, executor="map", devices=2,
    device_split="mesh"))
layout = train.ModelLayout(1, (0,), tuple(dataset.folds.names))
state = program.init(layout.keys(), layout.hparams([settings]))
leaf = jax.tree_util.tree_leaves(state)[0]
models = program.models(state, 5)
back = program.place(jax.device_get(models))
same = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(back),
                                               jax.tree_util.tree_leaves(state)))
print(json.dumps({"runs": result["runs"], "padded": leaf.shape[0],
                  "devices": len(leaf.sharding.device_set), "round_trip": same,
                  "models": jax.tree_util.tree_leaves(models)[0].shape[0]}))
"""


def assert_close_runs(runs, expected):
    """Runs equal up to float rounding (a differently compiled program: the mesh partitions and
    fuses it otherwise). The epoch losses are means over the batches: rtol 1e-5 (84 ulps) against
    <= 3.2 ulps between the executors after 8 epochs (`TRAINING_ULPS`; the mesh measured 0 on an
    Intel Xeon). UARs and best epochs are counts, equal unless a prediction flips: the smallest
    top-two logit gap of this configuration's validation and test rows is 3.4e-4, against logits
    that differ by rounding (<= 3e-6 in the executors' test)."""
    for a, b in zip(runs, expected, strict=True):
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(a["val_uar"], b["val_uar"], atol=1e-6)  # float32 of a count
        assert a["best_epoch"] == b["best_epoch"]


def test_a_mesh_over_two_devices_trains_like_one_device_and_keeps_its_state_sharded(
    tiny_dataset, one_wave, tmp_path
):
    import json
    import os
    import pathlib
    import shutil
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = pathlib.Path(__file__).parents[1]
    proc = subprocess.run([sys.executable, "-c", MESH_RUN, json.dumps(SMALL), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600,
                          cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # the state: 5 models padded to 6, sharded over both devices; models/place invert
    assert {k: got[k] for k in ("padded", "devices", "round_trip", "models")} == {
        "padded": 6, "devices": 2, "round_trip": True, "models": 5}  # fmt: skip
    assert_close_runs(got["runs"], one_wave["runs"])
    # the mesh run's checkpoint of epoch 1 resumes on one device (checkpoints hold M models)
    shutil.rmtree(tmp_path / "checkpoints" / "2")
    resumed = train.fit(tiny_dataset, families.settings_from("lstm_sa", SMALL), progress=False,
                        out_dir=tmp_path, checkpoint_every=1)  # fmt: skip
    assert resumed["epochs_resumed_from"] == 1
    assert_close_runs(resumed["runs"], one_wave["runs"])


def test_models_trained_in_waves_equal_one_wave(tiny_dataset, one_wave, tmp_path):
    import shutil

    # 5 folds in waves of 2 (2 + 2 + 1 filled up): every model as in one program, bit for
    # bit with the map executor (one compiled loop body per model, M only its trip count: see
    # the group test); the state waits on the host and checkpoints hold all 5. Resuming
    # replays the same program from the saved state: exact too
    settings = families.settings_from("lstm_sa", SMALL)
    waves = train.fit(tiny_dataset, settings, progress=False, max_models_per_wave=2,
                      out_dir=tmp_path, checkpoint_every=1)  # fmt: skip
    assert one_wave["models_per_wave"] == 5 and waves["models_per_wave"] == 2
    assert waves["runs"] == one_wave["runs"]
    shutil.rmtree(tmp_path / "checkpoints" / "2")
    resumed = train.fit(tiny_dataset, settings, progress=False, max_models_per_wave=3,
                        out_dir=tmp_path, checkpoint_every=1)  # fmt: skip
    assert resumed["epochs_resumed_from"] == 1 and resumed["runs"] == one_wave["runs"]


MiB = 2**20


@pytest.mark.parametrize(
    "models,devices,per_model,limit,cap,expected",
    [(10, 1, 1 * MiB, None, None, 10),  # no limit known (a CPU): all at once
     (10, 1, 1 * MiB, None, 4, 4),  # --max-models-per-wave
     (10, 1, 1 * MiB, 100 * MiB, None, 10),  # all fit
     (100, 1, 1 * MiB, 50 * MiB, None, 39),  # 80% of 50 MiB, less the 1 MiB shared
     (100, 2, 1 * MiB, 50 * MiB, None, 78),  # each device holds its share
     (100, 1, 1 * MiB, 50 * MiB, 7, 7)],
)  # fmt: skip
def test_waves_fit_the_device_memory(models, devices, per_model, limit, cap, expected):
    memory = train.stacking.ModelMemory(per_model=per_model, shared=1 * MiB)
    assert train.stacking.plan_waves(models, devices, memory, limit, max_per_wave=cap) == expected


def test_a_model_that_cannot_fit_is_named_in_one_line():
    memory = train.stacking.ModelMemory(per_model=900 * MiB, shared=10 * MiB)
    with pytest.raises(train.stacking.DoesNotFit) as caught:
        train.stacking.plan_waves(5, 1, memory, 1024 * MiB, what="reslstm_sa, batch size 256, "
                                  "T = 800")  # fmt: skip
    assert str(caught.value) == (
        "one model (reslstm_sa, batch size 256, T = 800) needs about 910 MiB, more than 80% of "
        "the device's 1024 MiB: use a smaller batch size or shorter utterances"
    )


def test_the_memory_estimate_counts_the_state_per_model_and_the_features_once(tiny_dataset):
    from reslstm_jax.params import count_params

    model = families.build_model("lstm_sa", tiny_dataset.x, 8, {"hidden_size": 4})
    config = train.TrainConfig(model=model, batch_size=8, executor="map")
    layout = train.ModelLayout(1, (0,), tuple(tiny_dataset.folds.names))
    settings = families.settings_from("lstm_sa", {"hidden_size": 4})
    shared = train.Shared(jnp.asarray(tiny_dataset.x), jnp.asarray(tiny_dataset.lengths),
                          jnp.asarray(tiny_dataset.labels))  # fmt: skip
    memory = train.stacking.model_memory(config, layout.keys(), layout.hparams([settings]),
                                         layout.model_data(tiny_dataset.folds), shared)  # fmt: skip
    params = count_params(model.init(jax.random.key(0))["params"])
    assert memory.shared == sum(a.nbytes for a in (tiny_dataset.x, tiny_dataset.lengths,
                                                   tiny_dataset.labels))  # fmt: skip
    # parameters, best parameters and Adam's two moments, float32, at least
    assert memory.per_model >= 4 * 4 * params


@pytest.mark.parametrize(
    "test_labels,predictions,best_val,val_labels,why",
    [
        ([0, 1, 2, 3], [2, 2, 2, 2], 0.9, [0, 1, 2, 3], "one class"),
        ([0, 1, 2, 3], [0, 1, 2, 2], 0.25, [0, 1, 2, 3], "chance"),  # validation never above 1/4
        ([0, 1, 2, 3], [0, 1, 2, 2], 0.5, [0, 0, 1, 1], "chance"),  # 2 classes validated: 1/2
        ([0, 1, 2, 3], [0, 1, 2, 2], 0.2501, [0, 1, 2, 3], None),
        ([1, 1, 1], [1, 1, 1], 0.9, [0, 1], None),  # one class tested: predicting it is right
        ([0, 1], [0, 1], 1.0, [1, 1], None),  # one class validated: no chance level to beat
    ],
)
def test_a_model_that_predicts_one_class_or_stays_at_chance_is_collapsed(
    test_labels, predictions, best_val, val_labels, why
):
    from reslstm_jax.train.results import collapse

    assert collapse(test_labels, predictions, best_val, val_labels) == why
