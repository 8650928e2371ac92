"""The train CLI's settings, resolved: every flag's value after the family's recipe and the
data's card (`filled_values`), the run's `config.yaml` (`write_config`), the same for a run made
elsewhere (`run_config`: an experiment's), and the one-seed warning.

Kept beside the CLI (`reslstm_jax.train.__main__`) so that it stays a thin parse-and-call.
"""

from __future__ import annotations

import json
import pathlib

from reslstm_jax import configfile

# Model fields that have a flag of their own (the others go to --model-config).
MODEL_FLAGS = ("hidden_size", "num_att", "res_blocks", "paper_compat")


def run_config(settings, card: dict, *, data_dir, corpus: str | None = None,
               label_set: str = "native", audio_variants=(),
               corpus_flags: dict | None = None) -> dict:  # fmt: skip
    """The train CLI's resolved config (config.yaml) of a run made elsewhere (an experiment's
    configuration): `python -m reslstm_jax.train --config RUN/config.yaml --out NEW` trains it
    alone. Every RunSettings field is a flag of the same name; the seeds must be 0..N-1.

    Args:
      settings: the run's RunSettings. card: its dataset's card. data_dir: the corpus folder
        (None: the embedded synthetic corpus). corpus: the loader's name (`manifest` for a
        manifest whose card names it `my_lab`; default: the card's). label_set,
        audio_variants: its data choices (`(("speed", 0.9), ...)`). corpus_flags: the values
        of `flags.add_corpus_options`' flags ({"label_map": ..., "corpus_name": ...}).
    """
    from reslstm_jax.train.__main__ import build_parser  # the CLI's flags (it imports this)

    parser = build_parser()
    args = parser.parse_args(["--out", "unused", "--model", settings.model])
    if tuple(settings.seeds) != tuple(range(len(settings.seeds))):
        raise ValueError(f"seeds {list(settings.seeds)} are not 0..N-1: no --seeds gives them")
    fields = settings.to_json()
    for dest in vars(args):
        if dest in fields and dest not in ("model", "model_config", "seeds"):
            setattr(args, dest, fields[dest])
    model = dict(settings.model_config)
    for name in MODEL_FLAGS:
        if name in model:
            setattr(args, name, model.pop(name))
    args.model_config = json.dumps(model) if model else None
    args.seeds = len(settings.seeds)
    args.corpus = (corpus or card["corpus"]) if data_dir else None
    for dest, value in (corpus_flags or {}).items():
        setattr(args, dest, value)
    args.data_dir = str(pathlib.Path(data_dir).expanduser().resolve()) if data_dir else None
    args.label_set = label_set
    for key, attr in (("speed", "speed_perturb"), ("snr_db", "noise_snr")):
        setattr(args, attr, [value for name, value in audio_variants if name == key])
    return configfile.resolved(parser, args, **filled_values(args, settings, card))


def spread_warning(seeds: int) -> str | None:
    """The one line that says a single seed leaves the results without spread, or None."""
    if seeds != 1:
        return None
    return ("warning: --seeds 1 trains one model per fold: the results have no spread over seeds "
            "(a paper's mean +- std needs --seeds 3 or more)")  # fmt: skip


def filled_values(args, settings, card: dict | None = None) -> dict:
    """What the model family's recipe (and the data's card, once read) gave to the flags left
    unset, so the resolved config names every value: {dest: value}."""
    from reslstm_jax import corpora, families, models

    model = models.get(settings.model, **dict(settings.model_config))
    recipe = families.get(settings.model).recipe
    filled = {
        **{name: getattr(model, name, None) for name in ("hidden_size", "num_att", "res_blocks")},
        "epochs": settings.epochs, "learning_rate": settings.learning_rate,
        "weight_decay": settings.weight_decay, "dropout": settings.dropout, "t0": settings.t0,
        "batch_size": settings.batch_size, "schedule": settings.schedule, "loss": settings.loss,
        "class_weights": settings.class_weights, "patience": settings.patience,
        "time_mask": settings.time_mask, "time_masks": settings.time_masks,
        "feature_mask": settings.feature_mask, "feature_masks": settings.feature_masks,
        "noise_std": settings.noise_std, "mixup_alpha": settings.mixup_alpha,
        "features": recipe.features, "normalisation": recipe.normalisation,
        "protocol": corpora.default_protocol(args.corpus or "synthetic"),
    }  # fmt: skip
    if card is not None:
        filled.update(protocol=card["protocol"], features=card["features"].get("name"),
                      feature_params=json.dumps(card["features"].get("params", {})),
                      normalisation=card["normalisation"])  # fmt: skip
    return filled


def write_config(parser, argv, args, settings, dataset, out) -> dict:
    """OUT/config.yaml: every setting of this run, resolved (`python -m reslstm_jax.train
    --config OUT/config.yaml --out NEW` trains it again), and the data's identity. Returns
    the settings as written (the W&B run's config carries the same keys)."""
    card = dataset.card
    identity = configfile.data_identity(card, args.data_dir)
    rerun = f"python -m reslstm_jax.train --config {out / configfile.CONFIG_NAME} --out NEW"
    resolved = configfile.resolved(parser, args, **filled_values(args, settings, card))
    configfile.write(out / configfile.CONFIG_NAME, resolved,
                     command=["python", "-m", "reslstm_jax.train", *argv], data=identity,
                     notes=[f"rerun: {rerun}"])  # fmt: skip
    return resolved
