"""The model axis M: every model of a program run by one jitted function, over devices.

```python
program = stacking.make_train(TrainConfig(model=model, executor="map", devices=2))
state = program.init(keys [M, 2], hparams [M])       # TrainState, a leading M on every leaf
state, history = program.run(state, hparams, model_data, shared, epochs=10)   # [M, 10] each
predictions = program.predict(state, model_data, shared)                      # [M, n] each
```

The only module that knows how the M models of a program are laid over the hardware (which
model is which, configuration x seed x fold, is `layout.py`'s):

* executors: "vmap" (all models in one batched program) or "map" (`lax.map`, `map_chunk`
  models at a time); "auto" is the measured default of the backend (docs/performance.md);
* the device split over `devices` local devices, each training an equal share of the models:
  "mesh" (`on_mesh`: one program for all devices, `jax.shard_map` over a `models` mesh axis,
  the state sharded and kept on the devices between calls) or "threads" (`across_devices`:
  one single-device program per device, dispatched from one thread each, the state gathered
  on the host every call); "auto" is "threads" on the CPU, where both train equally fast and
  only the threads give the same bits as one device, and "mesh" elsewhere
  (docs/performance.md).

The models are initialised one at a time by one small program (`init_each`), whatever the
executor and the split: the training and prediction programs run over the model axis.

Executors and device counts change speed, never results beyond float rounding of the
unpacked LSTMs (`model_for_executor`); tests hold them equal.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
from collections.abc import Callable

import jax
import numpy as np

from reslstm_jax.train import engine
from reslstm_jax.train.engine import TrainConfig


def resolve_executor(executor: str) -> str:
    """ "auto" -> the measured default of this backend (docs/performance.md): `lax.map` on the
    CPU, vmap elsewhere."""
    if executor != "auto":
        return executor
    return "map" if jax.default_backend() == "cpu" else "vmap"


def resolve_device_split(split: str) -> str:
    """ "auto" -> "threads" on the CPU (as fast as the mesh there, and bit for bit equal to
    one device, which a partitioned program is not: docs/performance.md), else "mesh"."""
    if split != "auto":
        return split
    return "threads" if jax.default_backend() == "cpu" else "mesh"


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


def over_models(executor: str, map_chunk: int, fn: Callable, *args):
    """`fn` applied to every model of `args` (a leading M axis on every leaf)."""
    if executor == "vmap":
        if jax.tree_util.tree_leaves(args)[0].shape[0] == 1:
            # One model (M = 1, or a device's share of one): a plain call. vmap over a
            # model axis of size 1 made XLA copy the LSTMs' [1, T, B, H] step buffers
            # whole on every step (an epoch took 1.53 s against 0.42 s, one core).
            out = fn(*jax.tree_util.tree_map(lambda a: a[0], args))
            return jax.tree_util.tree_map(lambda a: a[None], out)
        return jax.vmap(fn)(*args)
    chunk = map_chunk if map_chunk > 1 else None
    return jax.lax.map(lambda a: fn(*a), args, batch_size=chunk)


def _same(state, size: int | None = None):
    return state


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled functions of one static configuration over M models (see `make_train`).

    The state `init` and `run` return is the program's own: on a mesh it holds the models
    padded to a multiple of the devices, sharded. `models(state, M)` is the TrainState of the M
    models (for checkpoints and results), `place(state)` the inverse (a restored checkpoint).
    """

    config: TrainConfig
    init: Callable
    run: Callable
    predict: Callable
    models: Callable = _same
    place: Callable = _same
    init_one: Callable | None = None  # the jitted one-model init (`init_each`)


# The programs `make_train` built last, by configuration: a jitted function compiles on its
# first call, and a new one compiles again even for a configuration compiled before (JAX's
# in-memory caches hold executables per function object), so a sweep worker, which builds a
# program per trial group, compiled every group of a shape it had trained before anew
# (12-15 s on a 2-core CPU for a ResLSTM-SA h8 program; docs/performance.md). Bounded: each program
# keeps its executables, one per shape and epoch chunk it ran.
PROGRAM_CACHE_SIZE = 8
_programs: collections.OrderedDict = collections.OrderedDict()
_programs_lock = threading.Lock()


def make_train(config: TrainConfig) -> Program:
    """The jitted training program for `config` over a model axis M.

    Returns a `Program` with:
      init(keys [M] key data, hparams) -> TrainState [M] (`init_each`: one model at a time)
      run(state, hparams, model_data, shared, epochs=E) -> (state, history) where history has
        "train_loss" and "val_uar", each [M, E] (E is static: one compile per chunk length)
      predict(state, model_data, shared) -> {"val": [M, n_val], "test": [M, n_test]} int32
        class predictions of the best-validation parameters

    An equal configuration (same fields, same types: its `repr` too) gets the same `Program`
    back, with whatever it has compiled, while it is among the `PROGRAM_CACHE_SIZE` programs
    used last; a configuration that cannot be hashed gets a new one each time.
    """
    try:
        key = (config, repr(config))
        hash(key)
    except TypeError:  # a model configuration with an unhashable field
        return build_program(config)
    with _programs_lock:
        if key in _programs:
            _programs.move_to_end(key)
            return _programs[key]
    program = build_program(config)
    with _programs_lock:
        program = _programs.setdefault(key, program)  # a thread that built it first wins
        _programs.move_to_end(key)
        while len(_programs) > PROGRAM_CACHE_SIZE:
            _programs.popitem(last=False)
    return program


def build_program(config: TrainConfig) -> Program:
    """A new `Program` for `config`: `make_train` without its cache of built programs."""
    executor = resolve_executor(config.executor)
    model = model_for_executor(config.model, executor, config.map_chunk)
    fns = engine.make_train(dataclasses.replace(config, model=model))
    over = functools.partial(over_models, executor, config.map_chunk)

    init_one = jax.jit(fns.init)
    init = functools.partial(init_each, init_one)

    @functools.partial(jax.jit, static_argnames="epochs")
    def run(state, hparams, model_data, shared, *, epochs: int):
        return over(lambda s, hp, d: fns.run(s, hp, d, shared, epochs=epochs),
                    state, hparams, model_data)  # fmt: skip

    @jax.jit
    def predict(state, model_data, shared):
        return over(lambda s, d: fns.predict(s, d, shared), state, model_data)

    if config.devices == 1:
        return Program(config=config, init=init, run=run, predict=predict, init_one=init_one)
    devices = jax.local_devices()[: config.devices]
    if len(devices) < config.devices:
        raise ValueError(
            f"devices={config.devices}, but JAX has {len(devices)} local "
            f"{jax.default_backend()} device(s)"
        )
    if resolve_device_split(config.device_split) == "mesh":
        return on_mesh(config, fns, over, devices, init_one)
    return Program(
        config=config,
        init=init,  # on the first device: `run` hands each device its share
        run=across_devices(run, devices, model_args=3),
        predict=across_devices(predict, devices, model_args=2),
        init_one=init_one,
    )


def init_each(init_one: Callable, keys, hparams):
    """The TrainState [M] of M models, each initialised by `init_one` (the jitted init of one
    model), stacked on the first device.

    One small program whatever M, the executor and the devices: initialising runs once per
    run, and M calls of it take milliseconds, while a program over the model axis was
    compiled anew for every M, executor and device (3-4 s each on the CPU for a ResLSTM-SA
    h8, 11 s vmapped). The same bits as the `map` executor's one program over the models
    (every family, measured); vmapped, a ResLSTM-SA's orthogonal initialisation differed from
    them by rounding (4e-8), so the executors now start from the same parameters.
    """
    keys, hparams = jax.device_get((keys, hparams))
    states = [init_one(keys[i], jax.tree_util.tree_map(lambda a, i=i: a[i], hparams))
              for i in range(len(keys))]  # fmt: skip
    stacked = jax.tree_util.tree_map(lambda *parts: np.stack(parts), *jax.device_get(states))
    return jax.device_put(stacked, jax.local_devices()[0])


def across_devices(fn, devices: list, *, model_args: int):
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


def _padded(tree, size: int, total: int):
    """Every leaf [size, ...] -> [total, ...], the last model repeated (traced)."""
    import jax.numpy as jnp

    if total == size:
        return tree
    return jax.tree_util.tree_map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], total - size, axis=0)]), tree
    )


def on_mesh(config: TrainConfig, fns, over: Callable, devices: list, init_one: Callable
            ) -> Program:  # fmt: skip
    """The program of `make_train` over a one-axis mesh ("models") of `devices`.

    Each function is one jitted program for all devices: the M models are padded to a
    multiple of the device count (the last model repeated; its copies are never returned),
    and `jax.shard_map` gives each device its block, over which it runs the executor
    (`over`). The state stays sharded on the devices from call to call; only the histories
    and predictions of the M models come back. The per-model arguments other than the state
    (hyperparameters, fold data) are padded inside the program; the shared arrays are
    replicated. The state starts as `init_each` makes it, padded and sharded (`place`).
    """
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.asarray(devices), ("models",))
    by_model = NamedSharding(mesh, P("models"))
    n = len(devices)

    def total(size: int) -> int:
        return -(-size // n) * n

    def blocks(fn, model_args: int, shared: bool = False):
        specs = (P("models"),) * model_args + ((P(),) if shared else ())

        def block(*args):  # this device's models (and the shared arrays, whole)
            if not shared:
                return over(fn, *args)
            return over(lambda *per_model: fn(*per_model, args[-1]), *args[:-1])

        # check_vma off: the blocks never communicate (no collectives), so the check of
        # which values vary over "models" has nothing to guard
        return jax.shard_map(block, mesh=mesh, in_specs=specs, out_specs=P("models"),
                             check_vma=False)  # fmt: skip

    def first(tree, size: int):
        return jax.tree_util.tree_map(lambda a: a[:size], tree)

    @functools.partial(jax.jit, static_argnames="epochs")
    def run(state, hparams, model_data, shared, *, epochs: int):
        size = jax.tree_util.tree_leaves(hparams)[0].shape[0]
        step = blocks(lambda s, hp, d, sh: fns.run(s, hp, d, sh, epochs=epochs), 3, shared=True)
        state, history = step(state, _padded(hparams, size, total(size)),
                              _padded(model_data, size, total(size)), shared)  # fmt: skip
        state = jax.lax.with_sharding_constraint(state, by_model)
        return state, first(history, size)

    @jax.jit
    def predict(state, model_data, shared):
        size = jax.tree_util.tree_leaves(model_data)[0].shape[0]
        out = blocks(fns.predict, 2, shared=True)(state, _padded(model_data, size, total(size)),
                                                  shared)  # fmt: skip
        return first(out, size)

    def models(state, size: int):
        """The state of the `size` models (the padding dropped), on the first device."""
        return jax.device_put(first(state, size), devices[0])

    def place(state):
        """The state of M models (a restored checkpoint) padded and sharded as `run` keeps it."""
        size = jax.tree_util.tree_leaves(state)[0].shape[0]
        padded = _padded(jax.tree_util.tree_map(jnp.asarray, state), size, total(size))
        return jax.device_put(padded, by_model)

    def init(keys, hparams):  # one model at a time (`init_each`), then padded and sharded
        return place(init_each(init_one, keys, hparams))

    return Program(config=config, init=init, run=run, predict=predict, models=models,
                   place=place, init_one=init_one)  # fmt: skip


# ----------------------------------------------------------------------------- memory waves
# A program of M models keeps all their states (and, with vmap, their activations) on the
# device. When they do not fit, the models train in waves of W: every call runs the program
# of W models once per wave, the states waiting on the host in between.


@dataclasses.dataclass(frozen=True)
class ModelMemory:
    """Device memory of one training program, from XLA's compiled memory analysis of the
    program of one model (one epoch chunk): `per_model` bytes grow with every model (its
    state, its rows of the fold data, and its activations), `shared` bytes are paid once (the
    utterances' features, lengths and labels)."""

    per_model: int
    shared: int


def model_memory(config: TrainConfig, keys, hparams, model_data, shared) -> ModelMemory:
    """Estimate `ModelMemory` of `config`'s program from its inputs (shapes only: nothing is
    computed; the one-model program is compiled once). With the map executor, activations are
    paid once per device rather than per model, so the estimate errs on the safe side."""

    program = make_train(dataclasses.replace(config, devices=1))

    def single(tree):  # [M, ...] -> [...]
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), tree)

    def stacked(tree):  # [...] -> [1, ...]
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((1, *a.shape), a.dtype), tree)

    state = stacked(jax.eval_shape(program.init_one, single(keys), single(hparams)))
    compiled = program.run.lower(state, stacked(single(hparams)), stacked(single(model_data)),
                                 shared, epochs=1).compile()  # fmt: skip
    stats = compiled.memory_analysis()
    shared_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(shared))
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)  # fmt: skip
    return ModelMemory(per_model=max(1, int(total - shared_bytes)), shared=int(shared_bytes))


def device_memory() -> int | None:
    """Bytes the first local device may allocate (`memory_stats()["bytes_limit"]`); None where
    JAX does not say (the CPU), and then models are not split into waves unless asked."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


class DoesNotFit(ValueError):
    """Not even one model fits the device."""


def plan_waves(
    models: int,
    devices: int,
    memory: ModelMemory | None,
    limit: int | None,
    *,
    max_per_wave: int | None = None,
    margin: float = 0.8,
    what: str = "",
) -> int:
    """Models per wave: all `models` when they fit `margin` of every device's `limit` bytes
    (or when there is no limit), else the most that do, a multiple of `devices` (each device
    holds its share of a wave). `max_per_wave` caps it (`--max-models-per-wave`). Raises
    `DoesNotFit` (naming `what`: the model, batch size and T) when one model does not fit."""
    wave = models if max_per_wave is None else max(1, min(models, max_per_wave))
    if memory is None or limit is None:
        return wave
    per_device = int((limit * margin - memory.shared) // memory.per_model)
    if per_device < 1:
        mib = 2**20
        raise DoesNotFit(
            f"one model ({what}) needs about {(memory.per_model + memory.shared) / mib:.0f} MiB, "
            f"more than {margin:.0%} of the device's {limit / mib:.0f} MiB: use a smaller batch "
            f"size or shorter utterances"
        )
    return min(wave, per_device * devices)


def in_waves(program: Program, wave: int) -> Program:
    """`program` run on `wave` models at a time, one wave after the other, whatever M is.

    The last wave is filled up with copies of the last model (one compiled program for every
    wave; the copies are dropped). The state of all M models waits on the host between waves
    and calls. The results equal one wave's: each model trains on its own (with the map
    executor bit for bit; tests/test_train.py)."""

    def host_slice(tree, start: int, stop: int):
        def cut(a):
            part = np.asarray(a[start:stop])
            if len(part) < wave:
                part = np.concatenate([part, np.repeat(part[-1:], wave - len(part), 0)])
            return part

        return jax.tree_util.tree_map(cut, tree)

    def waves(fn, model_args: int, *, state_in: bool, post=lambda out: out):
        def call(*args, **kwargs):
            per_model = jax.device_get(args[:model_args])
            n = jax.tree_util.tree_leaves(per_model[-1])[0].shape[0]
            outputs = []
            for start in range(0, n, wave):
                part = host_slice(per_model, start, start + wave)
                if state_in:  # a wave's state as the program keeps it (a mesh: sharded)
                    part = (program.place(part[0]), *part[1:])
                out = jax.device_get(post(fn(*part, *args[model_args:], **kwargs)))
                count = min(wave, n - start)
                outputs.append(jax.tree_util.tree_map(lambda a, c=count: np.asarray(a)[:c], out))
            return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outputs)

        return call

    return dataclasses.replace(
        program,
        init=waves(program.init, 2, state_in=False, post=lambda s: program.models(s, wave)),
        run=waves(
            program.run, 3, state_in=True, post=lambda out: (program.models(out[0], wave), out[1])
        ),
        predict=waves(program.predict, 2, state_in=True),
        models=_same,
        place=_same,
    )
