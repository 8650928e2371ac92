"""`python -m reslstm_jax.models`: the model zoo with exact parameter counts and measured latency.

For every model and hidden size it prints the trainable parameters (computed from the
configuration), the fp32 and fp16 weight size, and the model's own latency per second of audio,
measured as runs, sweeps and reports measure it (`reslstm_jax.latency`: a process of its own on
one core with one thread, the jitted eval forward pass at batch 1 on a test signal of
`--seconds` in the family's own features, the median and interquartile range of `--blocks`
rounds of `--calls-per-block` calls, and the ratio to the paper's ResLSTM-SA h64 timed beside
it, which compares machines). The feature front-end's time is printed once per feature set.
Nothing here is trained: it is the zoo's static card.
"""

from __future__ import annotations

import argparse
import json
import sys

from reslstm_jax import edge, flags, latency, models
from reslstm_jax.params import param_count

# the families whose hidden size the card sweeps; the seed models have their published size
HIDDEN_SWEPT = ("lstm_sa", "reslstm_sa")


def architecture(model) -> latency.Architecture:
    """What the card times for `model`: its family's recipe features at their rate
    (`latency.recipe_architecture`), the hidden size where the card sweeps it."""
    config = {"hidden_size": model.hidden_size} if model.name in HIDDEN_SWEPT else {}
    return latency.recipe_architecture(model.name, config)


def card_models(names: list[str], hidden_sizes: list[int]) -> list:
    """The card's models in order: each attention LSTM at each hidden size, each seed model
    once at its published configuration."""
    return [models.get(name, **({"hidden_size": h} if h is not None else {}))
            for name in names
            for h in (hidden_sizes if name in HIDDEN_SWEPT else [None])]  # fmt: skip


def card_rows(zoo: list, figures: dict) -> list[dict]:
    """One row per model: its counts and sizes, then `latency.edge_fields`' figures (the same
    keys as a sweep's pareto.csv) and the frames it was timed on."""
    rows = []
    for i, model in enumerate(zoo):
        count = param_count(model)
        rows.append({
            "model": model.name, "hidden_size": getattr(model, "hidden_size", None),
            "params": count, "kib_fp32": round(count * 4 / 1024, 1),
            "kib_fp16": round(count * 2 / 1024, 1),
            "frames": figures["architectures"][i]["frames"],
            **latency.edge_fields(figures, i),
        })  # fmt: skip
    return rows


def table(rows: list[dict], seconds: float) -> str:
    """The card as text: a header line, one line per model, the feature sets' times and the
    machine."""
    head = (
        f"Model zoo: each model's own latency per second of audio (ms/s: JAX, eval, batch "
        f"1, a {seconds:g} s test signal in its family's features, one thread on one "
        f"core, median of many calls; IQR its interquartile range; x ref: relative to "
        f"{rows[0]['latency_reference']} timed alongside, which compares machines)"
    )
    columns = (f"{'model':<14}{'H':>5}{'params':>11}{'KiB fp32':>10}{'KiB fp16':>10}"
               f"{'frames':>8}{'ms/s':>9}{'IQR':>15}{'x ref':>7}")  # fmt: skip
    lines = [head, columns, "-" * len(columns)]
    for r in rows:
        iqr = f"{r['model_ms_q1']:.3f}-{r['model_ms_q3']:.3f}"
        lines.append(
            f"{r['model']:<14}{r['hidden_size'] or '-':>5}{r['params']:>11,}"
            f"{r['kib_fp32']:>10}{r['kib_fp16']:>10}{r['frames']:>8}"
            f"{r['model_ms_per_s']:>9.3f}{iqr:>15}{r['model_rel']:>7.2f}"
        )  # fmt: skip
    lines += [f"features {name}: {timing} per second of audio"
              for name, timing in edge.feature_timings(rows).items()]  # fmt: skip
    lines += [f"measured on {cpu}, {threads} thread" for cpu, threads
              in edge.latency_machines(rows)]  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reslstm_jax.models",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=flags.HelpFormatter)  # fmt: skip
    parser.add_argument("--models", nargs="+", default=models.names(),
                        help="the model families on the card")  # fmt: skip
    parser.add_argument("--hidden-sizes", nargs="+", type=int, default=[32, 64, 128],
                        help="the attention LSTMs' sizes (the seed models have their "
                        "published size)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=latency.SECONDS,
                        help="the test signal's length")  # fmt: skip
    parser.add_argument("--blocks", type=int, default=latency.BLOCKS,
                        help="timed rounds per model (the median and quartiles are over "
                        "them)")  # fmt: skip
    parser.add_argument("--calls-per-block", type=int, default=latency.CALLS_PER_BLOCK,
                        help="forward passes in a row per round")  # fmt: skip
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="a table, or one JSON object per line")  # fmt: skip
    flags.deprecated(parser, "--repeats", "--blocks", type=int)
    flags.deprecated_switch(parser, "--json", "--format json", "format", "json")
    return flags.ranged(parser)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.models if name not in models.names()]
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {', '.join(models.names())}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    zoo = card_models(args.models, args.hidden_sizes)
    try:
        figures = latency.measure([architecture(m) for m in zoo], seconds=args.seconds,
                                  blocks=args.blocks, calls_per_block=args.calls_per_block,
                                  onnx=False)  # fmt: skip
    except latency.LatencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rows = card_rows(zoo, figures)
    if args.format == "json":
        for row in rows:
            print(json.dumps(row))
    else:
        print(table(rows, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
