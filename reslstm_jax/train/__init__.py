"""Training: M models (configurations x seeds x folds) trained by one compiled program.

```python
from reslstm_jax import data, families, train

dataset = data.prepare()                                    # the synthetic corpus
settings = families.settings_from("reslstm_sa", {"seeds": (0, 1), "epochs": 20})
results = train.fit(dataset, settings, out_dir="runs/h64")  # every fold x seed
```

The package, one concern a module (docs/architecture.md):

* `engine`: what one model's run does (containers, schedules, optimiser, loss, validation UAR
  and best-epoch selection inside the program); `engine.make_train` returns per-model
  functions.
* `stacking`: the model axis M over executors and devices; `make_train` (re-exported here)
  returns the jitted `Program` over M.
* `augment`: the in-program augmentation of training batches (masks, noise, mixup).
* `layout`: which model is which on M (`ModelLayout`: configuration x seed x fold), keys and
  stacked hyperparameters (class weights from each fold's labels) and fold data.
* `fit`: `RunSettings`, the fit loop (`fit`, `fit_group`) and `run` (fit, edge metrics, files).
* `results`: the results dict, summary lines, edge metrics.
* `__main__`: `python -m reslstm_jax.train` (parser and main only).
"""

from reslstm_jax.artifacts import (
    INFERENCE_FILE,
    NORMALISATION_FILE,
    write_inference_info,
    write_json,
    write_text_atomic,
)
from reslstm_jax.train.engine import (
    ETA_MIN_FRACTION,
    OPTIMIZER,
    Executor,
    HParams,
    ModelData,
    ModelFunctions,
    Shared,
    TrainConfig,
    TrainState,
    cosine_warm_restarts,
    exp_decay,
    learning_rate_at,
    make_optimizer,
    multistep,
    per_row_loss,
    uar_from_predictions,
    with_hyperparams,
)
from reslstm_jax.train.fit import (
    RunSettings,
    chunk_lengths,
    fit,
    fit_group,
    run,
    static_signature,
)
from reslstm_jax.train.layout import ModelLayout, model_key, stack_model_data
from reslstm_jax.train.results import (
    architecture,
    diverged_line,
    edge_metrics,
    epoch_rows,
    headline,
    pooled_predictions,
    summary_lines,
)
from reslstm_jax.train.stacking import (
    Program,
    across_devices,
    make_train,
    model_for_executor,
    on_mesh,
    resolve_device_split,
    resolve_executor,
)

__all__ = [
    "ETA_MIN_FRACTION", "INFERENCE_FILE", "NORMALISATION_FILE", "OPTIMIZER", "Executor",
    "HParams", "ModelData", "ModelFunctions", "ModelLayout", "Program", "RunSettings", "Shared",
    "TrainConfig", "TrainState", "across_devices", "architecture", "chunk_lengths",
    "cosine_warm_restarts",
    "diverged_line",
    "edge_metrics", "epoch_rows", "exp_decay", "fit", "fit_group", "headline",
    "learning_rate_at", "make_optimizer",
    "make_train", "model_for_executor", "model_key", "multistep", "on_mesh", "per_row_loss",
    "pooled_predictions",
    "resolve_device_split", "resolve_executor", "run", "stack_model_data", "static_signature",
    "summary_lines",
    "uar_from_predictions", "with_hyperparams", "write_inference_info", "write_json",
    "write_text_atomic",
]  # fmt: skip
