"""The training engine: M models (folds x seeds x trials) trained by one compiled program.

```python
static = TrainConfig(model=rj.models.get("reslstm_sa", hidden_size=64), batch_size=32)
program = make_train(static)                 # jitted; compiled once per static shape
state = program.init(keys, hparams)          # [M, ...] stacked training state
state, history = program.run(state, hparams, model_data, shared, epochs=10)   # an epoch chunk
predictions = program.predict(state, model_data, shared)                      # best params
```

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
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from reslstm_jax import nn
from reslstm_jax.recipes import LOSSES, SCHEDULES

Executor = Literal["vmap", "map", "auto"]
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
        as Light-SERNet). A model with `loss_heads` (DS-LSTM) gets the weighted sum over its
        heads; a model with `l2_penalty` (Light-SERNet) has it added to the loss.
      devices: local devices the model axis is split over: each device runs the same program
        on its share of the models, with the executor (`_across_devices`). On a CPU each
        device is one core (`reslstm_jax.hardware.use_cpu_cores`). The results do not depend
        on it.
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

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.executor not in ("vmap", "map", "auto"):
            raise ValueError(f"executor must be vmap, map or auto, got {self.executor!r}")
        if self.map_chunk < 1:
            raise ValueError(f"map_chunk must be >= 1, got {self.map_chunk}")
        if self.devices < 1:  # the upper bound is checked by make_train: asking JAX for its
            # devices here would start its backend before `hardware.use_cpu_cores` could act
            raise ValueError(f"devices must be >= 1, got {self.devices}")

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size

    def resolved_executor(self) -> str:
        """ "auto" -> the measured default of this backend (docs/performance.md)."""
        if self.executor != "auto":
            return self.executor
        return "map" if jax.default_backend() == "cpu" else "vmap"


@flax.struct.dataclass
class HParams:
    """Per-model numeric hyperparameters, each [M]."""

    learning_rate: jax.Array
    weight_decay: jax.Array
    dropout: jax.Array
    t0: jax.Array  # int32, epochs per cosine cycle


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


# ----------------------------------------------------------------------------- the program


def uar_from_predictions(y_true, y_pred, mask, num_classes):
    """Macro recall over the classes present among the masked rows (jit-able)."""
    onehot_true = jax.nn.one_hot(y_true, num_classes) * mask[:, None]
    hits = (onehot_true * jax.nn.one_hot(y_pred, num_classes)).sum(0)
    support = onehot_true.sum(0)
    present = support > 0
    recall = jnp.where(present, hits / jnp.maximum(support, 1), 0.0)
    return recall.sum() / jnp.maximum(present.sum(), 1)


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled functions of one static configuration (see `make_train`)."""

    config: TrainConfig
    init: callable
    run: callable
    predict: callable


def model_for_executor(model, executor: str, map_chunk: int = 1):
    """The model configuration a program with this executor runs.

    A packed LSTM (`row_block`, the attention models' default) loops over phases whose bounds
    come from each batch's lengths. Batched over models (`vmap`, or `lax.map` chunks of more
    than one) the bounds differ per model, and the loops turn into masked while loops whose
    slices are gathers: 16x slower on the CPU at M = 5 (docs/performance.md). Batched executors
    therefore run those models unpacked, which changes results only by float rounding.
    """
    batched = executor == "vmap" or map_chunk > 1
    if batched and getattr(model, "row_block", None) is not None:
        return dataclasses.replace(model, row_block=None)
    return model


def make_train(config: TrainConfig) -> Program:
    """Build the jitted training program for `config`.

    Returns a `Program` with:
      init(keys [M] key data, hparams) -> TrainState [M]
      run(state, hparams, model_data, shared, epochs=E) -> (state, history) where history has
        "train_loss" and "val_uar", each [M, E] (E is static: one compile per chunk length)
      predict(state, model_data, shared) -> {"val": [M, n_val], "test": [M, n_test]} int32
        class predictions of the best-validation parameters
    """
    executor = config.resolved_executor()
    model = model_for_executor(config.model, executor, config.map_chunk)
    batch = config.batch_size
    eval_batch = config.eval_batch
    num_classes = model.num_classes
    optimizer = make_optimizer(config.adam_eps)

    def over_models(fn, *args):
        if executor == "vmap":
            if jax.tree_util.tree_leaves(args)[0].shape[0] == 1:
                # One model (M = 1, or a device's share of one): a plain call. vmap over a
                # model axis of size 1 made XLA copy the LSTMs' [1, T, B, H] step buffers
                # whole on every step (an epoch took 1.53 s against 0.42 s, one core).
                out = fn(*jax.tree_util.tree_map(lambda a: a[0], args))
                return jax.tree_util.tree_map(lambda a: a[None], out)
            return jax.vmap(fn)(*args)
        chunk = config.map_chunk if config.map_chunk > 1 else None
        return jax.lax.map(lambda a: fn(*a), args, batch_size=chunk)

    def inputs(shared, data, rows, valid):
        """Normalised features of `rows`: x [b, T, D], lengths [b] (0 for invalid rows).
        Multi-array features ({key: [N, ...]}) are read raw (they are never normalised)."""
        lengths = jnp.where(valid, shared.lengths[rows], 0)
        if isinstance(shared.x, dict):
            return {k: v[rows] for k, v in shared.x.items()}, lengths
        frames = nn.length_mask(lengths, shared.x.shape[1])[..., None]
        x = jnp.where(frames, (shared.x[rows] - data.mean) / data.std, 0.0)
        return x, lengths

    def predict_rows(params, stats, shared, data, rows, valid):
        """Eval-mode class predictions of `rows` [n], in batches of `eval_batch`."""
        n = rows.shape[0]
        steps = math.ceil(n / eval_batch)
        pad = steps * eval_batch - n
        rows_b = jnp.pad(rows, (0, pad)).reshape(steps, eval_batch)
        valid_b = jnp.pad(valid, (0, pad)).reshape(steps, eval_batch)

        def one(args):
            r, v = args
            x, lengths = inputs(shared, data, r, v)
            logits, _ = model.apply({"params": params, "batch_stats": stats}, x, lengths)
            return jnp.argmax(logits, -1).astype(jnp.int32)

        return jax.lax.map(one, (rows_b, valid_b)).reshape(-1)[:n]

    def loss_fn(params, stats, x, lengths, labels, valid, key, rate):
        (logits, aux), new_stats = model.apply(
            {"params": params, "batch_stats": stats},
            x, lengths, train=True, key=key, dropout_rate=rate,
        )  # fmt: skip
        heads = model.loss_heads(logits, aux) if hasattr(model, "loss_heads") else [(1.0, logits)]
        per_row = sum(weight * per_row_loss(config.loss, head, labels) for weight, head in heads)
        loss = jnp.sum(jnp.where(valid, per_row, 0.0)) / jnp.maximum(valid.sum(), 1)
        if hasattr(model, "l2_penalty"):
            loss = loss + model.l2_penalty(params)
        return loss, new_stats

    def one_epoch(state: TrainState, hp: HParams, data: ModelData, shared: Shared):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.epoch + 1)
        key_shuffle, key_dropout = jax.random.split(key)
        n_train = data.train.shape[0]
        steps = math.ceil(n_train / batch)
        # Shuffle the real rows and keep them first: the short batch is the last real one.
        # Each position draws its own number, so the order does not depend on how wide the
        # padded index array is (a model trains the same alone or stacked with bigger folds).
        noise = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key_shuffle, i)))(
            jnp.arange(n_train)
        )
        order = jnp.argsort(jnp.where(data.train_mask, noise, 2.0))
        pad = steps * batch - n_train
        rows = jnp.pad(data.train[order], (0, pad)).reshape(steps, batch)
        valid = jnp.pad(data.train_mask[order], (0, pad)).reshape(steps, batch)
        lr = learning_rate_at(config.schedule, hp.learning_rate, hp.t0, state.epoch)

        def step(carry, inp):
            params, stats, opt_state = carry
            r, v, i = inp
            x, lengths = inputs(shared, data, r, v)
            (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, stats, x, lengths, shared.labels[r], v,
                jax.random.fold_in(key_dropout, i), hp.dropout,
            )  # fmt: skip
            opt_state = with_hyperparams(opt_state, lr, hp.weight_decay)
            updates, new_opt = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            active = v.any()  # a batch without a training row must not move anything
            carry = _select(active, (new_params, new_stats, new_opt), (params, stats, opt_state))
            return carry, (jnp.where(active, loss, 0.0), active)

        (params, stats, opt_state), (losses, active) = jax.lax.scan(
            step,
            (state.params, state.batch_stats, state.opt_state),
            (rows, valid, jnp.arange(steps)),
        )
        train_loss = losses.sum() / jnp.maximum(active.sum(), 1)
        val_pred = predict_rows(params, stats, shared, data, data.val, data.val_mask)
        val_uar = uar_from_predictions(shared.labels[data.val], val_pred, data.val_mask,
                                       num_classes)  # fmt: skip
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

    def init_one(key_data, hp: HParams) -> TrainState:
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

    @jax.jit
    def init(keys, hparams):
        return over_models(init_one, keys, hparams)

    @functools.partial(jax.jit, static_argnames="epochs")
    def run(state, hparams, model_data, shared, *, epochs: int):
        def per_model(s, hp, data):
            s, (loss, uar) = jax.lax.scan(
                lambda c, _: one_epoch(c, hp, data, shared), s, None, length=epochs
            )
            return s, {"train_loss": loss, "val_uar": uar}

        return over_models(per_model, state, hparams, model_data)

    @jax.jit
    def predict(state, model_data, shared):
        def per_model(s, data):
            best = (s.best_params, s.best_batch_stats)
            return {
                "val": predict_rows(*best, shared, data, data.val, data.val_mask),
                "test": predict_rows(*best, shared, data, data.test, data.test_mask),
            }

        return over_models(per_model, state, model_data)

    if config.devices == 1:
        return Program(config=config, init=init, run=run, predict=predict)
    devices = jax.local_devices()[: config.devices]
    if len(devices) < config.devices:
        raise ValueError(
            f"devices={config.devices}, but JAX has {len(devices)} local "
            f"{jax.default_backend()} device(s)"
        )
    return Program(
        config=config,
        init=_across_devices(init, devices, model_args=2),
        run=_across_devices(run, devices, model_args=3),
        predict=_across_devices(predict, devices, model_args=2),
    )


def _across_devices(fn, devices: list, *, model_args: int):
    """`fn` with the model axis of its first `model_args` arguments split over `devices`.

    Each device runs the same single-device program on an equal share of the models (the
    last model is repeated to fill the shares; its copies are dropped), every other argument
    goes whole to every device, and the results come back stacked on the first device. The
    calls are dispatched from one thread per device and the devices run concurrently (the
    first call compiles the program once per device).

    Why not `shard_map`: on the CPU client of jaxlib 0.10 a shard_map program with two models
    per device ran no faster than one device, while separate programs ran concurrently
    (docs/performance.md).
    """
    from concurrent.futures import ThreadPoolExecutor

    def split_call(*args, **kwargs):
        per_model = jax.device_get(args[:model_args])
        n = jax.tree_util.tree_leaves(per_model)[0].shape[0]
        share = -(-n // len(devices))

        def on_device(i):
            def cut(a):
                part = a[i * share : (i + 1) * share]
                if len(part) < share:  # the last device's share, filled up with the last model
                    part = np.concatenate([part, np.repeat(a[-1:], share - len(part), 0)])
                return part

            device = devices[i]
            mine = jax.device_put(jax.tree_util.tree_map(cut, per_model), device)
            return fn(*mine, *jax.device_put(args[model_args:], device), **kwargs)

        with ThreadPoolExecutor(len(devices)) as pool:
            outputs = jax.device_get(list(pool.map(on_device, range(len(devices)))))
        return jax.device_put(
            jax.tree_util.tree_map(lambda *parts: np.concatenate(parts)[:n], *outputs),
            devices[0],
        )

    return split_call


# ----------------------------------------------------------------------------- keys


def model_key(seed: int, fold: int, *, share_across_seeds: bool = False) -> jax.Array:
    """Raw key data [2] uint32 of the model (seed, fold).

    Default: `fold_in(fold_in(key(0), seed), fold)`, so every seed is an independent run.
    `share_across_seeds=True` reproduces the reference, which reseeds with 42 + 100 fold
    inside every run: its "runs" share each fold's initialisation and shuffles.
    """
    base = jax.random.fold_in(jax.random.key(0), 0 if share_across_seeds else seed)
    return jax.random.key_data(jax.random.fold_in(base, fold))


# ----------------------------------------------------------------------------- one configuration


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that defines a run of one configuration (JSON-able, stored with results)."""

    model: str = "reslstm_sa"
    model_config: tuple = ()  # (name, value) pairs passed to models.get
    seeds: tuple[int, ...] = (0,)
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1.6e-3
    dropout: float = 0.2
    t0: int = 10
    executor: Executor = "auto"
    share_init_across_seeds: bool = False
    schedule: str = "cosine"
    adam_eps: float = 1e-8
    loss: str = "ce"

    def __post_init__(self):
        checks = [
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.t0 >= 1, f"T_0 must be >= 1 epoch, got {self.t0}"),
            (len(self.seeds) >= 1, "at least one seed is needed"),
            (len(set(self.seeds)) == len(self.seeds), f"seeds repeat: {list(self.seeds)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["model_config"] = dict(self.model_config)
        out["seeds"] = list(self.seeds)
        return out


def stack_model_data(folds, n_seeds: int) -> ModelData:
    """ModelData [M = seeds x folds] from `data.FoldArrays` (model m = seed m // K, fold m % K)."""

    def tile(a):
        return jnp.asarray(np.tile(a, (n_seeds,) + (1,) * (a.ndim - 1)))

    return ModelData(
        train=tile(folds.train), train_mask=tile(folds.train_mask),
        val=tile(folds.val), val_mask=tile(folds.val_mask),
        test=tile(folds.test), test_mask=tile(folds.test_mask),
        mean=tile(folds.mean), std=tile(folds.std),
    )  # fmt: skip


def chunk_lengths(start: int, total: int, every: int) -> list[int]:
    """Epoch chunks from `start` to `total`, ending on multiples of `every`."""
    chunks, epoch = [], start
    while epoch < total:
        end = min(total, (epoch // every + 1) * every)
        chunks.append(end - epoch)
        epoch = end
    return chunks


def static_signature(settings: RunSettings) -> tuple:
    """What must be equal for runs to share one compiled program (and one epoch count)."""
    return (settings.model, settings.model_config, settings.batch_size, settings.executor,
            settings.epochs, settings.seeds, settings.share_init_across_seeds, settings.schedule,
            settings.adam_eps, settings.loss)  # fmt: skip


def fit(dataset, settings: RunSettings, **kwargs) -> dict:
    """Train every fold x seed of one configuration; see `fit_group`."""
    return fit_group(dataset, [settings], **kwargs)[0]


def fit_group(
    dataset,
    group: list[RunSettings],
    *,
    out_dir=None,
    checkpoint_every: int = 10,
    progress: bool = True,
    objective: str = "val",
    on_chunk=None,
    devices: int | None = None,
) -> list[dict]:
    """Train several configurations that share a static shape in one program.

    M = configurations x seeds x folds (model m: configuration m // (S K), seed (m // K) % S,
    fold m % K). With `out_dir`, the stacked state is checkpointed every `checkpoint_every`
    epochs and at the end under `out_dir/checkpoints`, and a rerun resumes from the latest
    checkpoint; the best parameters of every model go to `out_dir/best`.

    `on_chunk(epochs_done, history)` is called after every epoch chunk (`history`: the
    "train_loss" and "val_uar" arrays [M, epochs] so far); returning True stops training there
    (the sweep engine's pruning): the results then hold the best epoch so far and
    `stopped_at_epoch`.

    `devices`: how many local devices share the models (default: all of them, at most M; see
    `reslstm_jax.hardware`). It changes the speed, never the results.

    Returns one results dict per configuration (see `docs/training.md`): settings, card,
    per-model histories, best epochs, test metrics and predictions, every aggregation.
    """
    import pathlib
    import time

    from tqdm.auto import tqdm

    from reslstm_jax import checkpoint, hardware, metrics, recipes
    from reslstm_jax.params import count_params

    if len({static_signature(s) for s in group}) != 1:
        raise ValueError("a group must share model, model config, batch size, executor, "
                         "epochs and seeds")  # fmt: skip
    first = group[0]
    model = recipes.build_model(first.model, dataset.x, len(dataset.classes), first.model_config)
    n_folds, seeds, epochs = len(dataset.folds.names), list(first.seeds), first.epochs
    per_config = n_folds * len(seeds)
    n_models = per_config * len(group)
    config = TrainConfig(
        model=model, batch_size=first.batch_size, executor=first.executor,
        schedule=first.schedule, adam_eps=first.adam_eps, loss=first.loss,
        devices=hardware.model_devices(n_models, devices),
    )  # fmt: skip
    program = make_train(config)

    def per_model(field, dtype):
        return jnp.asarray(np.repeat([getattr(s, field) for s in group], per_config), dtype)

    hparams = HParams(
        learning_rate=per_model("learning_rate", jnp.float32),
        weight_decay=per_model("weight_decay", jnp.float32),
        dropout=per_model("dropout", jnp.float32),
        t0=per_model("t0", jnp.int32),
    )
    keys = jnp.stack(
        [model_key(s, k, share_across_seeds=first.share_init_across_seeds)
         for _ in group for s in seeds for k in range(n_folds)]
    )  # fmt: skip
    model_data = stack_model_data(dataset.folds, len(seeds) * len(group))
    shared = Shared(jax.tree_util.tree_map(jnp.asarray, dataset.x), jnp.asarray(dataset.lengths),
                    jnp.asarray(dataset.labels))  # fmt: skip

    state = program.init(keys, hparams)
    history = {k: np.zeros((n_models, epochs), np.float32) for k in ("train_loss", "val_uar")}
    start = 0
    saver = None
    if out_dir is not None:
        fingerprint = {"settings": [s.to_json() for s in group],
                       "utterance_ids_sha256": dataset.card["utterance_ids_sha256"],
                       "protocol": dataset.card["protocol"], "features": dataset.card["features"],
                       "normalisation": dataset.card["normalisation"]}  # fmt: skip
        saver = checkpoint.Checkpointer(pathlib.Path(out_dir) / "checkpoints", fingerprint)
        if saver.latest_epoch() is not None:
            start, state, history = saver.restore(state, history)
            history = {k: np.array(v) for k, v in history.items()}

    executor = config.resolved_executor()
    on_devices = f", {config.devices} {jax.default_backend()} devices" if config.devices > 1 else ""
    bar = tqdm(total=epochs, initial=start, disable=not progress, unit="epoch",
               desc=f"{first.model} x{n_models} ({executor}{on_devices})")  # fmt: skip
    started = time.perf_counter()
    epoch = start
    for length in chunk_lengths(start, epochs, checkpoint_every):
        state, chunk = program.run(state, hparams, model_data, shared, epochs=length)
        for key in history:
            history[key][:, epoch : epoch + length] = np.asarray(chunk[key])
        epoch += length
        if saver is not None:
            saver.save(epoch, state, history)
        bar.set_postfix(val_uar=f"{history['val_uar'][:, epoch - 1].mean():.3f}")
        bar.update(length)
        if on_chunk is not None and on_chunk(epoch, history):
            break
    bar.close()
    predictions = jax.tree_util.tree_map(np.asarray, program.predict(state, model_data, shared))
    seconds = time.perf_counter() - started
    if out_dir is not None:
        saver.close()
        checkpoint.save_best(pathlib.Path(out_dir) / "best", state.best_params,
                             state.best_batch_stats)  # fmt: skip
        write_inference_info(out_dir, dataset, group, model)

    labels = np.asarray(dataset.labels)
    folds = dataset.folds
    n_params = count_params(jax.tree_util.tree_map(lambda a: a[0], state.params))
    results = []
    for c, settings in enumerate(group):
        y_true = [[None] * n_folds for _ in seeds]
        y_pred = [[None] * n_folds for _ in seeds]
        runs = []
        for local in range(per_config):
            m = c * per_config + local
            s, k = divmod(local, n_folds)
            rows = folds.test[k][folds.test_mask[k]]
            pred = predictions["test"][m][folds.test_mask[k]]
            y_true[s][k], y_pred[s][k] = labels[rows], pred
            runs.append({
                "seed": seeds[s], "fold": folds.names[k],
                "train_loss": history["train_loss"][m].tolist(),
                "val_uar": history["val_uar"][m].tolist(),
                "best_epoch": int(state.best_epoch[m]),
                "best_val_uar": float(state.best_val_uar[m]),
                "test": metrics.classification(labels[rows], pred, len(dataset.classes)),
                "test_predictions": {"ids": [dataset.ids[i] for i in rows],
                                     "labels": labels[rows].tolist(),
                                     "predictions": pred.tolist()},
            })  # fmt: skip
        results.append({
            "settings": settings.to_json(),
            "model": {"name": model.name, "config": dataclasses.asdict(model),
                      "trainable_params": n_params},
            "card": dataset.card,
            "objective": objective,
            "executor": executor,
            "backend": jax.default_backend(),
            "train_seconds": seconds,
            "models_in_program": n_models,
            "devices": config.devices,
            "epochs_resumed_from": start,
            "stopped_at_epoch": epoch,
            "runs": runs,
            "aggregate": metrics.aggregate(folds.names, seeds, y_true, y_pred,
                                           len(dataset.classes)),
        })  # fmt: skip
    return results


# ----------------------------------------------------------------------------- CLI


INFERENCE_FILE = "inference.json"
NORMALISATION_FILE = "normalisation.npz"


def write_inference_info(out_dir, dataset, group: list[RunSettings], model) -> None:
    """What `reslstm_jax.predict` needs next to `best/`: the model configurations, the stacked
    model layout, the feature extractor, the classes, the training audio's sample rates, and
    each fold's normalisation statistics (`normalisation.npz`: mean, std [K, D])."""
    import io
    import pathlib

    out_dir = pathlib.Path(out_dir)
    info = {
        "format": 1,
        "layout": "model m = configuration m // (S K), seed (m // K) % S, fold m % K",
        "model": model.name,
        "model_config": {k: v for k, v in dataclasses.asdict(model).items() if k != "name"},
        "configurations": len(group),
        "seeds": list(group[0].seeds),
        "folds": list(dataset.folds.names),
        "classes": list(dataset.classes),
        "features": dataset.card["features"],
        "normalisation": dataset.card["normalisation"],
        "frames": int(dataset.frames),
        "sample_rates": dataset.card.get("sample_rates", {}),
        "corpus": dataset.card["corpus"],
        "protocol": dataset.card["protocol"],
        "utterance_ids_sha256": dataset.card["utterance_ids_sha256"],
    }
    buffer = io.BytesIO()
    np.savez(buffer, mean=dataset.folds.mean, std=dataset.folds.std)
    tmp = out_dir / (NORMALISATION_FILE + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(out_dir / NORMALISATION_FILE)
    write_json(out_dir / INFERENCE_FILE, info)


def edge_metrics(results: dict, dataset, *, latency: bool = True) -> dict:
    """Edge metrics of a finished run's model (latency on the training audio's sample rate)."""
    from reslstm_jax import edge, features, models

    model = models.get(results["model"]["name"], **{
        k: v for k, v in results["model"]["config"].items() if k != "name"})  # fmt: skip
    extractor = None
    rate = 16000
    info = dataset.card["features"]
    if latency and info.get("name") in features.EXTRACTORS:  # not for hand-made arrays
        extractor = features.get(info["name"], **info["params"])
        rates = dataset.card.get("sample_rates") or {}
        if rates:
            rate = int(max(rates, key=rates.get))  # the corpus's most common rate
    return edge.metrics(model, extractor, sample_rate=rate)


def write_text_atomic(path, text: str) -> None:
    """Write text atomically (a temporary file renamed into place: never half-written)."""
    import os
    import pathlib
    import tempfile

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, obj) -> None:
    """Write JSON atomically."""
    import json

    write_text_atomic(path, json.dumps(obj, indent=1))


def summary_lines(results: dict) -> list[str]:
    """Human-readable result lines, each aggregation named."""
    agg = results["aggregate"]
    card = results["card"]
    leaky = " [LEAKY: global normalisation]" if card.get("normalisation_leaky") else ""
    if card.get("leaky"):
        leaky += f" [LEAKY protocol: {card['leaky']}]"
    lines = [
        f"{results['model']['name']} ({results['model']['trainable_params']:,} params) on "
        f"{card['corpus']} / {card['protocol']}, {len(results['settings']['seeds'])} seed(s), "
        f"{results['settings']['epochs']} epochs{leaky}",
        "  model selection: best validation UAR; test read once at the end",
    ]
    if any(f.get("val_is_test") for f in card["folds"]):
        lines[1] = f"  model selection: best TEST UAR (LEAKY: {card.get('leaky')})"
    for name, fold in agg["per_fold"].items():
        u = fold["uar"]
        lines.append(f"  {name}: test UAR {u['mean']:.4f} (mean over seeds, max {u['max']:.4f})")
    fm = agg["fold_mean"]["uar"]
    lines.append(f"  mean of fold UARs: {fm['mean']:.4f} +- {fm['std_population']:.4f} "
                 f"(population std over seeds)")  # fmt: skip
    p = agg["pooled_oof_uar"]
    lines.append(f"  pooled out-of-fold UAR: {p['mean']:.4f} +- {p['std_population']:.4f} "
                 f"(population std over seeds), max {p['max']:.4f}")  # fmt: skip
    lines.append(f"  pooled out-of-fold WA {agg['pooled_oof_wa']['mean']:.4f}, macro-F1 "
                 f"{agg['pooled_oof_macro_f1']['mean']:.4f} (means over seeds)")  # fmt: skip
    return lines


def build_parser():
    import argparse

    from reslstm_jax import data, features, models, protocols

    defaults = RunSettings()
    p = argparse.ArgumentParser(
        prog="python -m reslstm_jax.train",
        description="Train one configuration on every fold x seed of a protocol, in one "
        "compiled program, and write results, protocol card and best checkpoints.",
    )
    p.add_argument("--model", default=defaults.model, choices=models.names())
    p.add_argument("--hidden-size", type=int, help="hidden size (model default: 64 for the "
                   "attention LSTMs, 200 for ds_lstm; light_sernet has none)")  # fmt: skip
    p.add_argument("--num-att", type=int, help="attention vectors (lstm_sa, reslstm_sa; default 1)")
    p.add_argument("--res-blocks", type=int, default=None, help="residual blocks (reslstm_sa)")
    p.add_argument("--paper-compat", action="store_true",
                   help="reproduce the reference's unmasked attention/BatchNorm")  # fmt: skip
    p.add_argument("--model-config", metavar="JSON",
                   help='more model fields as JSON, e.g. \'{"branches": "ds"}\'')  # fmt: skip
    p.add_argument(
        "--corpus",
        choices=list(data.DEFAULT_PROTOCOL),
        help="a real corpus (needs --data-dir); default: the synthetic corpus",
    )
    p.add_argument("--data-dir", help="where the corpus is")
    p.add_argument(
        "--protocol",
        choices=protocols.names(),
        help="fold protocol (default: the corpus's, ravdess_paper for RAVDESS)",
    )
    p.add_argument("--features", choices=features.names(),
                   help="feature extractor (default: the model's recipe)")  # fmt: skip
    p.add_argument("--feature-params", metavar="JSON",
                   help='extractor parameters, e.g. \'{"seconds": 7}\' (tf_mfcc, 7 s)')  # fmt: skip
    p.add_argument(
        "--normalisation",
        choices=data.NORMALISATIONS,
        help="fold (training speakers only), global (the paper's; leaky) or none (raw); "
        "default: the model's recipe",
    )
    p.add_argument("--seeds", type=int, default=1, help="independent runs (seeds 0..N-1)")
    # None = the model family's recipe (reslstm_jax.recipes); shown in --help per family there
    p.add_argument("--epochs", type=int, help="default: the recipe's (100 for the LSTMs)")
    p.add_argument("--lr", type=float, help="default: the recipe's (1e-3 for the LSTMs)")
    p.add_argument("--weight-decay", type=float, help="coupled L2 (default: the recipe's)")
    p.add_argument("--dropout", type=float, help="default: the recipe's")
    p.add_argument("--t0", type=int, help="cosine restart period in epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="default: the recipe's (32 for the LSTMs)")
    p.add_argument("--schedule", choices=SCHEDULES, help="default: the recipe's")
    p.add_argument("--loss", choices=LOSSES, help="default: the recipe's (ce)")
    p.add_argument("--executor", default="auto", choices=["auto", "vmap", "map"])
    p.add_argument("--devices", type=int, default=None,
                   help="devices sharing the models (default: all; on a CPU one per core, "
                   "each single-threaded, at most one per model); results do not depend on "
                   "it")  # fmt: skip
    p.add_argument(
        "--share-init-across-seeds",
        action="store_true",
        help="the reference's per-fold reseeding: seeds share initialisations",
    )
    p.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints")
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    p.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-latency", action="store_true",
                   help="skip the CPU latency measurement of the edge metrics")  # fmt: skip
    p.add_argument("--out", required=True, help="output directory")
    return p


def pick(flag, default):
    """A flag's value, or the recipe's when the flag was not given."""
    return default if flag is None else flag


def parse_json_object(flag: str, text: str | None) -> dict:
    """A JSON object flag ({} when not given); lists become tuples (hashable configs)."""
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def parse_model_config(args) -> dict:
    """Model fields from the flags that were given (the model's defaults for the rest)."""
    config = parse_json_object("--model-config", args.model_config)
    for flag, field in (("hidden_size", "hidden_size"), ("num_att", "num_att"),
                        ("res_blocks", "res_blocks")):  # fmt: skip
        if getattr(args, flag) is not None:
            config[field] = getattr(args, flag)
    if args.paper_compat:
        config["paper_compat"] = True
    return config


def main(argv=None) -> int:
    import pathlib
    import sys

    from reslstm_jax import checkpoint, data, edge, hardware, protocols
    from reslstm_jax.corpora.base import CorpusError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from reslstm_jax import models, recipes

        if args.devices is not None and args.devices < 1:
            raise ValueError(f"--devices must be >= 1, got {args.devices}")

        recipe = recipes.get(args.model)
        model_config = parse_model_config(args)
        models.get(args.model, **model_config)  # validate before any work
        settings = RunSettings(
            model=args.model, model_config=tuple(sorted(model_config.items())),
            seeds=tuple(range(args.seeds)), epochs=pick(args.epochs, recipe.epochs),
            batch_size=pick(args.batch_size, recipe.batch_size),
            learning_rate=pick(args.lr, recipe.learning_rate),
            weight_decay=pick(args.weight_decay, recipe.weight_decay),
            dropout=pick(args.dropout, recipe.dropout), t0=pick(args.t0, recipe.t0),
            executor=args.executor, share_init_across_seeds=args.share_init_across_seeds,
            schedule=pick(args.schedule, recipe.schedule), adam_eps=recipe.adam_eps,
            loss=pick(args.loss, recipe.loss),
        )  # fmt: skip
        if args.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    except ValueError as exc:
        parser.error(str(exc))
    out = pathlib.Path(args.out)
    try:
        dataset = data.prepare(
            args.corpus, args.data_dir, protocol=args.protocol,
            extractor=pick(args.features, recipe.features),
            extractor_params=parse_json_object("--feature-params", args.feature_params),
            normalisation=pick(args.normalisation, recipe.normalisation),
            cache_dir=args.cache_dir, workers=args.workers,
            progress=not args.no_progress,
        )  # fmt: skip
        if dataset.extraction.failed:
            print(dataset.extraction.summary(), file=sys.stderr)
        print(protocols.format_card(dataset.card))
        # JAX has not computed anything yet (data.prepare is NumPy and librosa): a CPU gets one
        # device per core (or --devices), never more than there are models to share them.
        n_models = len(dataset.folds.names) * args.seeds
        hardware.use_cpu_cores(min(args.devices or hardware.usable_cores(), n_models))
        results = fit(dataset, settings, out_dir=out, checkpoint_every=args.checkpoint_every,
                      progress=not args.no_progress, devices=args.devices)  # fmt: skip
    except (CorpusError, protocols.ProtocolError, checkpoint.CheckpointMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad combinations of flags found by data.prepare
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results["edge"] = edge_metrics(results, dataset, latency=not args.no_latency)
    write_json(out / "card.json", dataset.card)
    write_json(out / "extraction_report.json", dataset.extraction.to_json())
    write_json(out / "results.json", results)
    print("\n".join(summary_lines(results)))
    print(f"  edge: {edge.summary(results['edge'])}")
    print(f"wrote {out / 'results.json'}, {out / 'card.json'}, best checkpoints in {out / 'best'}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
