"""The training engine: what one model's compiled run does, epoch by epoch.

```python
static = TrainConfig(model=rj.models.get("reslstm_sa", hidden_size=64), batch_size=32)
fns = engine.make_train(static)              # per-model pure functions (no model axis)
state = fns.init(key_data, hp)               # one model's TrainState
state, history = fns.run(state, hp, data, shared, epochs=10)
predictions = fns.predict(state, data, shared)
```
`reslstm_jax.train.stacking.make_train` runs these over the model axis M (vmap or lax.map,
split over devices) and jits them: that is the `Program` the fit loop and the tests use.

Static (`TrainConfig`, hashable): the model, batch size, eval batch size, executor. Dynamic,
with a leading model axis M: keys, hyperparameters (`HParams`: learning rate, weight decay,
dropout, T_0), and each model's fold (`ModelData`: train / val / test row indices with masks
and its normalisation statistics). Shared by all models (`Shared`): the padded feature array,
lengths and labels.

Inside the program, per model and per epoch: a fresh shuffle of the model's training rows
(valid rows first, so the last real batch is the short one, as with `drop_last=False`); one
update per batch, gated off with `where` on batches holding no training row (a model with a
smaller training set runs the same number of steps without moving, and Adam's moments and
step count stay as they were); the learning rate of the epoch from CosineAnnealingWarmRestarts;
validation UAR after the epoch; the parameters and BatchNorm statistics of the best epoch
(strictly greater validation UAR) kept with `where`.

Optimisation as the reference: Adam (0.9, 0.999, eps 1e-8) with *coupled* L2 weight decay
(g <- grad + wd * theta on every parameter, then Adam; not AdamW), per-model learning rate and
weight decay in the optimiser state (`optax.inject_hyperparams`), cross-entropy averaged over
the batch's real rows, eta(e) = eta_min + (lr - eta_min)(1 + cos(pi (e mod T_0) / T_0)) / 2
with eta_min = 0.01 lr, stepped once per epoch.

Randomness: every model has its own key; the key of epoch e is `fold_in(key, e + 1)` (init
uses `fold_in(key, 0)`), so a run resumed from any epoch draws exactly what an uninterrupted
run draws.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from reslstm_jax import nn
from reslstm_jax.settings import EXECUTORS, LOSSES, SCHEDULES, Executor, choice_problem
from reslstm_jax.train.augment import AUGMENTATION_FIELDS, augment

ETA_MIN_FRACTION = 0.01


# ----------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static configuration: everything that changes a shape or the program.

    Attributes:
      model: a model configuration from `reslstm_jax.models.get` (hashable).
      batch_size: training batch size.
      eval_batch_size: validation/test batch size; None = batch_size, which the reference
        uses (in `paper_compat` mode the eval batches change predictions, so keep None there).
      executor: "vmap" (all models in one batched program), "map" (`lax.map`, one model or
        `map_chunk` models at a time), or "auto" (the measured default of the backend).
      map_chunk: models per `lax.map` step (1 = strictly one at a time).
      schedule: learning rate per epoch: "cosine" (CosineAnnealingWarmRestarts, T_0 from the
        hyperparameters), "multistep" (x0.5 at epochs 10, 20, 30: DS-LSTM) or "exp_decay"
        (x exp(-0.15) every 20 epochs from epoch 60: Light-SERNet).
      adam_eps: Adam's epsilon (1e-8 torch, 1e-7 Keras).
      loss: "ce" (cross-entropy) or "focal" (gamma 2, probabilities clipped to [1e-7, 1 - 1e-7],
        as Light-SERNet), summed over the model's `loss_heads` with their weights (DS-LSTM has
        two), plus the model's `penalty` (Light-SERNet's L2; `reslstm_jax.models.base`).
      devices: local devices the model axis is split over: each device runs the same program
        on its share of the models, with the executor. On a CPU each device is one core
        (`reslstm_jax.hardware.use_cpu_cores`). The results do not depend on it
        (`reslstm_jax.train.stacking`).
      device_split: how: "mesh" (one program sharded over the devices, `stacking.on_mesh`),
        "threads" (one program per device, `stacking.across_devices`) or "auto" (threads on
        the CPU, mesh elsewhere: `stacking.resolve_device_split`).
    """

    model: object
    batch_size: int = 32
    eval_batch_size: int | None = None
    executor: Executor = "auto"
    map_chunk: int = 1
    schedule: str = "cosine"
    adam_eps: float = 1e-8
    loss: str = "ce"
    devices: int = 1
    device_split: str = "auto"

    def __post_init__(self):
        # the settings' own checks (`reslstm_jax.settings`), for a TrainConfig made directly
        for problem in (choice_problem("schedule", self.schedule, SCHEDULES),
                        choice_problem("loss", self.loss, LOSSES),
                        choice_problem("executor", self.executor, EXECUTORS)):  # fmt: skip
            if problem:
                raise ValueError(problem)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.device_split not in ("mesh", "threads", "auto"):
            raise ValueError(
                f"device_split must be mesh, threads or auto, got {self.device_split!r}"
            )
        if self.map_chunk < 1:
            raise ValueError(f"map_chunk must be >= 1, got {self.map_chunk}")
        if self.devices < 1:  # the upper bound is checked by make_train: asking JAX for its
            # devices here would start its backend before `hardware.use_cpu_cores` could act
            raise ValueError(f"devices must be >= 1, got {self.devices}")

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size

    def resolved_executor(self) -> str:
        """ "auto" -> the measured default of this backend (`stacking.resolve_executor`)."""
        from reslstm_jax.train.stacking import resolve_executor

        return resolve_executor(self.executor)


@flax.struct.dataclass
class HParams:
    """Per-model numeric hyperparameters, each [M] (`class_weight` [M, C]).

    The optional ones are None when no model of the program uses them: the program then has
    none of their code (and is the program of a run without them, bit for bit). Where one
    model uses them, every model has them, the others with their "off" value (0, or weights
    of 1), which changes nothing for those models (gated with `where`).
    """

    learning_rate: jax.Array
    weight_decay: jax.Array
    dropout: jax.Array
    t0: jax.Array  # int32, epochs per cosine cycle
    class_weight: jax.Array | None = None  # [C] loss weight of each class (1: unweighted)
    patience: jax.Array | None = None  # int32; freeze after this many epochs without a new best
    time_mask: jax.Array | None = None  # int32, widest time mask (frames); 0: none
    time_masks: jax.Array | None = None  # int32, time masks per utterance (<= MAX_MASKS)
    feature_mask: jax.Array | None = None  # int32, widest feature mask (features); 0: none
    feature_masks: jax.Array | None = None  # int32, feature masks per utterance
    noise_std: jax.Array | None = None  # float32, Gaussian noise on normalised features
    mixup_alpha: jax.Array | None = None  # float32, Beta(alpha, alpha) mixup; 0: none


@flax.struct.dataclass
class ModelData:
    """Per-model rows of the shared arrays: [M, n] int32 indices with [M, n] bool masks, and
    the model's normalisation statistics [M, D]."""

    train: jax.Array
    train_mask: jax.Array
    val: jax.Array
    val_mask: jax.Array
    test: jax.Array
    test_mask: jax.Array
    mean: jax.Array
    std: jax.Array


@flax.struct.dataclass
class Shared:
    """Arrays every model reads: x [N, T, D] float32 (raw), lengths [N], labels [N]."""

    x: jax.Array
    lengths: jax.Array
    labels: jax.Array


@flax.struct.dataclass
class TrainState:
    """One model's training state (stacked: a leading M axis on every leaf)."""

    params: dict
    batch_stats: dict
    opt_state: optax.OptState
    best_params: dict
    best_batch_stats: dict
    best_val_uar: jax.Array  # float32; -1 before the first epoch
    best_epoch: jax.Array  # int32; -1 before the first epoch
    epoch: jax.Array  # int32, epochs done
    key: jax.Array  # uint32 [2] raw key data (checkpoint-friendly)


# ----------------------------------------------------------------------------- optimisation


def cosine_warm_restarts(lr, t0, epoch):
    """CosineAnnealingWarmRestarts(T_0 = t0, T_mult = 1, eta_min = 0.01 lr) at `epoch`."""
    eta_min = ETA_MIN_FRACTION * lr
    phase = jnp.mod(epoch, t0) / t0
    return eta_min + (lr - eta_min) * (1 + jnp.cos(jnp.pi * phase)) / 2


MULTISTEP_MILESTONES = (10, 20, 30)  # DS-LSTM: MultiStepLR(milestones, gamma 0.5)
MULTISTEP_GAMMA = 0.5


def multistep(lr, epoch):
    """MultiStepLR(milestones 10/20/30, gamma 0.5) stepped per epoch, at `epoch`."""
    passed = sum(jnp.asarray(epoch >= m, jnp.float32) for m in MULTISTEP_MILESTONES)
    return lr * MULTISTEP_GAMMA**passed


def exp_decay(lr, epoch):
    """Light-SERNet: constant to epoch 59, then x exp(-0.15) at epochs 60, 80, ...:
    lr exp(-0.15 max(0, floor(e / 20) - 2))."""
    return lr * jnp.exp(-0.15 * jnp.maximum(0, epoch // 20 - 2))


def learning_rate_at(schedule: str, lr, t0, epoch):
    """The learning rate of `epoch` (0-based) under the named schedule."""
    if schedule == "multistep":
        return multistep(lr, epoch)
    if schedule == "exp_decay":
        return exp_decay(lr, epoch)
    return cosine_warm_restarts(lr, t0, epoch)


def make_optimizer(eps: float = 1e-8):
    """torch.optim.Adam(lr, weight_decay=wd) (coupled L2) with both in the optimiser state."""

    def adam_coupled_l2(learning_rate, weight_decay):
        return optax.chain(
            optax.add_decayed_weights(weight_decay),
            optax.scale_by_adam(b1=0.9, b2=0.999, eps=eps),
            optax.scale_by_learning_rate(learning_rate),
        )

    return optax.inject_hyperparams(adam_coupled_l2)(learning_rate=0.0, weight_decay=0.0)


OPTIMIZER = make_optimizer(1e-8)


def per_row_loss(kind: str, logits, labels):
    """[B] cross-entropy, or focal loss (gamma 2) on clipped probabilities (Keras style)."""
    if kind == "focal":
        probs = jnp.clip(jax.nn.softmax(logits), 1e-7, 1 - 1e-7)
        p_true = jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0]
        return jnp.square(1 - p_true) * -jnp.log(p_true)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]


def with_hyperparams(opt_state, learning_rate, weight_decay):
    """The optimiser state with this step's learning rate and weight decay."""
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(learning_rate, hyper["learning_rate"].dtype)
    hyper["weight_decay"] = jnp.asarray(weight_decay, hyper["weight_decay"].dtype)
    return opt_state._replace(hyperparams=hyper)


def _select(flag, new, old):
    return jax.tree_util.tree_map(lambda n, o: jnp.where(flag, n, o), new, old)


# ----------------------------------------------------------------------------- one model


def uar_from_predictions(y_true, y_pred, mask, num_classes):
    """Macro recall over the classes present among the masked rows (jit-able)."""
    onehot_true = jax.nn.one_hot(y_true, num_classes) * mask[:, None]
    hits = (onehot_true * jax.nn.one_hot(y_pred, num_classes)).sum(0)
    support = onehot_true.sum(0)
    present = support > 0
    recall = jnp.where(present, hits / jnp.maximum(support, 1), 0.0)
    return recall.sum() / jnp.maximum(present.sum(), 1)


def model_inputs(shared: Shared, data: ModelData, rows, valid):
    """Normalised features of `rows` [b]: x [b, T, D], lengths [b] (0 for invalid rows).
    Multi-array features ({key: [N, ...]}) are read raw (they are never normalised)."""
    lengths = jnp.where(valid, shared.lengths[rows], 0)
    if isinstance(shared.x, dict):
        return {k: v[rows] for k, v in shared.x.items()}, lengths
    frames = nn.length_mask(lengths, shared.x.shape[1])[..., None]
    x = jnp.where(frames, (shared.x[rows] - data.mean) / data.std, 0.0)
    return x, lengths


def predict_rows(model, eval_batch: int, params, stats, shared, data, rows, valid, *,
                 probabilities: bool = False):  # fmt: skip
    """Eval-mode class predictions [n] int32 of `rows` [n], in batches of `eval_batch`; with
    `probabilities`, also the softmax of each row's logits [n, C] float32."""
    n = rows.shape[0]
    steps = math.ceil(n / eval_batch)
    pad = steps * eval_batch - n
    rows_b = jnp.pad(rows, (0, pad)).reshape(steps, eval_batch)
    valid_b = jnp.pad(valid, (0, pad)).reshape(steps, eval_batch)

    def one(args):
        r, v = args
        x, lengths = model_inputs(shared, data, r, v)
        logits, _ = model.apply({"params": params, "batch_stats": stats}, x, lengths)
        pred = jnp.argmax(logits, -1).astype(jnp.int32)
        return (pred, jax.nn.softmax(logits, -1)) if probabilities else pred

    out = jax.lax.map(one, (rows_b, valid_b))  # [steps, eval_batch, ...]: rows in order
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:n], out)


def batch_loss(model, loss: str, params, stats, x, lengths, labels, valid, key, rate,
               targets=None):  # fmt: skip
    """(loss over the batch's valid rows + the model's penalty, new batch statistics).

    `targets` (None: the plain mean over the valid rows): `(class_weight [C] or None,
    partner labels [B] or None, lam)`. Each row's loss is `lam * w[y] * L(y) + (1 - lam) *
    w[y'] * L(y')` (mixup with partner labels y'; lam = 1 without), divided by the sum of
    `lam * w[y] + (1 - lam) * w[y']` over the valid rows: PyTorch's weighted
    `CrossEntropyLoss` mean, and the mean itself with weights of 1."""
    (logits, extras), new_stats = model.apply(
        {"params": params, "batch_stats": stats},
        x, lengths, train=True, key=key, dropout_rate=rate,
    )  # fmt: skip
    heads = model.loss_heads(logits, extras)

    def rows_loss(y):
        return sum(weight * per_row_loss(loss, head, y) for weight, head in heads)

    if targets is None:
        per_row = rows_loss(labels)
        total = jnp.sum(jnp.where(valid, per_row, 0.0)) / jnp.maximum(valid.sum(), 1)
        return total + model.penalty(params), new_stats
    class_weight, partner, lam = targets
    w = jnp.ones_like(labels, jnp.float32) if class_weight is None else class_weight[labels]
    per_row, norm = w * rows_loss(labels), w
    if partner is not None:
        w_p = jnp.ones_like(w) if class_weight is None else class_weight[partner]
        per_row = lam * per_row + (1 - lam) * w_p * rows_loss(partner)
        norm = lam * w + (1 - lam) * w_p
    total = jnp.sum(jnp.where(valid, per_row, 0.0)) / jnp.maximum(
        jnp.sum(jnp.where(valid, norm, 0.0)), 1e-12)  # fmt: skip
    return total + model.penalty(params), new_stats


def frozen_at(patience, epochs_done, best_epoch):
    """Whether early stopping freezes a model before its next epoch: `patience` > 0 epochs
    have passed since its best one (`best_epoch` 0-based, `epochs_done` epochs trained).
    Works on JAX and NumPy arrays alike (the fit loop asks it on the host)."""
    return (patience > 0) & (epochs_done - 1 - best_epoch >= patience)


def epoch_batches(key, data: ModelData, batch: int):
    """This epoch's training batches: rows, valid [steps, batch].

    The real rows are shuffled and kept first, so the short batch is the last real one. Each
    position draws its own number, so the order does not depend on how wide the padded index
    array is (a model trains the same alone or stacked with bigger folds).
    """
    n_train = data.train.shape[0]
    steps = math.ceil(n_train / batch)
    noise = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(jnp.arange(n_train))
    order = jnp.argsort(jnp.where(data.train_mask, noise, 2.0))
    pad = steps * batch - n_train
    rows = jnp.pad(data.train[order], (0, pad)).reshape(steps, batch)
    valid = jnp.pad(data.train_mask[order], (0, pad)).reshape(steps, batch)
    return rows, valid


def train_epoch(config: TrainConfig, optimizer, state: TrainState, hp: HParams,
                data: ModelData, shared: Shared):  # fmt: skip
    """One epoch of one model: updates, validation UAR, best-epoch selection.

    Returns (state, (train_loss, val_uar)), both float32 scalars.
    """
    model = config.model
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.epoch + 1)
    key_shuffle, key_dropout = jax.random.split(key)
    key_augment = jax.random.fold_in(key, 1 << 20)  # its own stream: the others stay as they are
    rows, valid = epoch_batches(key_shuffle, data, config.batch_size)
    lr = learning_rate_at(config.schedule, hp.learning_rate, hp.t0, state.epoch)
    loss_and_grad = jax.value_and_grad(functools.partial(batch_loss, model, config.loss),
                                       has_aux=True)  # fmt: skip
    augmented = any(getattr(hp, f) is not None for f in AUGMENTATION_FIELDS)
    frozen = None  # early stopping: a frozen model's epoch updates nothing
    if hp.patience is not None:
        frozen = frozen_at(hp.patience, state.epoch, state.best_epoch)

    def step(carry, inp):
        params, stats, opt_state = carry
        r, v, i = inp
        x, lengths = model_inputs(shared, data, r, v)
        labels, targets = shared.labels[r], None
        if augmented:
            x, lengths, partner, lam = augment(jax.random.fold_in(key_augment, i), hp, x,
                                               lengths, labels, v)  # fmt: skip
            targets = (hp.class_weight, partner, lam)
        elif hp.class_weight is not None:
            targets = (hp.class_weight, None, jnp.float32(1.0))
        (loss, new_stats), grads = loss_and_grad(
            params, stats, x, lengths, labels, v,
            jax.random.fold_in(key_dropout, i), hp.dropout, targets,
        )  # fmt: skip
        opt_state = with_hyperparams(opt_state, lr, hp.weight_decay)
        updates, new_opt = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        active = v.any()  # a batch without a training row must not move anything
        if frozen is not None:
            active = active & ~frozen
        carry = _select(active, (new_params, new_stats, new_opt), (params, stats, opt_state))
        return carry, (jnp.where(active, loss, 0.0), active)

    (params, stats, opt_state), (losses, active) = jax.lax.scan(
        step,
        (state.params, state.batch_stats, state.opt_state),
        (rows, valid, jnp.arange(rows.shape[0])),
    )
    train_loss = losses.sum() / jnp.maximum(active.sum(), 1)
    if hp.patience is not None:  # a frozen epoch trained nothing: no loss (NaN, JSON null)
        train_loss = jnp.where(frozen, jnp.nan, train_loss)
    val_pred = predict_rows(model, config.eval_batch, params, stats, shared, data, data.val,
                            data.val_mask)  # fmt: skip
    val_uar = uar_from_predictions(shared.labels[data.val], val_pred, data.val_mask,
                                   model.num_classes)  # fmt: skip
    better = val_uar > state.best_val_uar
    new_state = state.replace(
        params=params,
        batch_stats=stats,
        opt_state=opt_state,
        best_params=_select(better, params, state.best_params),
        best_batch_stats=_select(better, stats, state.best_batch_stats),
        best_val_uar=jnp.where(better, val_uar, state.best_val_uar),
        best_epoch=jnp.where(better, state.epoch, state.best_epoch),
        epoch=state.epoch + 1,
    )
    return new_state, (train_loss, val_uar)


def init_state(model, optimizer, key_data, hp: HParams) -> TrainState:
    """One model's fresh TrainState from its raw key data [2] uint32."""
    key = jax.random.wrap_key_data(key_data)
    variables = model.init(jax.random.fold_in(key, 0))
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = with_hyperparams(optimizer.init(params), hp.learning_rate, hp.weight_decay)
    return TrainState(
        params=params,
        batch_stats=stats,
        opt_state=opt_state,
        best_params=params,
        best_batch_stats=stats,
        best_val_uar=jnp.float32(-1.0),
        best_epoch=jnp.int32(-1),
        epoch=jnp.int32(0),
        key=key_data,
    )


@dataclasses.dataclass(frozen=True)
class ModelFunctions:
    """The pure functions of one model of a static configuration (see `make_train`)."""

    config: TrainConfig
    init: Callable
    run: Callable
    predict: Callable


def make_train(config: TrainConfig) -> ModelFunctions:
    """One model's functions for `config` (no model axis, not jitted):

      init(key_data [2] uint32, hp) -> TrainState
      run(state, hp, data, shared, *, epochs=E) -> (state, {"train_loss": [E], "val_uar": [E]})
      predict(state, data, shared) -> {"val": [n_val], "test": [n_test]} int32 class
        predictions of the best-validation parameters

    `config.model` is run as given: `stacking.make_train` picks the model variant its executor
    runs (`stacking.model_for_executor`).
    """
    model = config.model
    optimizer = make_optimizer(config.adam_eps)

    def init(key_data, hp: HParams) -> TrainState:
        return init_state(model, optimizer, key_data, hp)

    def run(state: TrainState, hp: HParams, data: ModelData, shared: Shared, *, epochs: int):
        state, (loss, uar) = jax.lax.scan(
            lambda s, _: train_epoch(config, optimizer, s, hp, data, shared),
            state, None, length=epochs,
        )  # fmt: skip
        return state, {"train_loss": loss, "val_uar": uar}

    def predict(state: TrainState, data: ModelData, shared: Shared) -> dict:
        best = (state.best_params, state.best_batch_stats)
        # the test rows' class probabilities too (predictions.csv), from the same pass
        test, probabilities = predict_rows(model, config.eval_batch, *best, shared, data,
                                           data.test, data.test_mask,
                                           probabilities=True)  # fmt: skip
        val = predict_rows(model, config.eval_batch, *best, shared, data, data.val, data.val_mask)
        return {"val": val, "test": test, "test_probabilities": probabilities}

    return ModelFunctions(config=config, init=init, run=run, predict=predict)
