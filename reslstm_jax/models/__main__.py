"""`python -m reslstm_jax.models`: the model zoo with exact parameter counts and measured latency.

For every model and hidden size it prints the trainable parameters (computed from the
configuration), the fp32 and fp16 weight size, and the measured eval-mode forward latency of
this machine for one utterance of `--seconds` of RAVDESS-rate audio (features excluded, batch 1,
after compilation and warm-up). Nothing here is trained: it is the zoo's static card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp

from reslstm_jax import flags, models
from reslstm_jax.params import param_count

# Paper features: 48 kHz audio, hop 2048 -> T = 1 + floor(N / 2048) frames.
SAMPLE_RATE = 48_000
HOP = 2048


def example_input(model, seconds: float):
    """A batch-1 input of `seconds` of audio in the model's own features, and its frames."""
    if hasattr(model, "example_input"):  # DS-LSTM: fixed spectrograms + MFCC at 100 frames/s
        frames = max(5, round(seconds * 100))
        x, lengths = model.example_input(jax.random.key(1), 1, frames)
        return x, lengths, frames
    # Light-SERNet centre-crops or pads to 3 s: 184 frames whatever `seconds`
    frames = 184 if model.name == "light_sernet" else 1 + int(seconds * SAMPLE_RATE) // HOP
    x = jax.random.normal(jax.random.key(1), (1, frames, model.input_size))
    return x, jnp.array([frames]), frames


def forward_latency_ms(model, seconds: float, repeats: int) -> float:
    """Median wall time of one jitted eval forward pass on a batch-1 input."""
    variables = model.init(jax.random.key(0))
    x, lengths, _ = example_input(model, seconds)
    forward = jax.jit(model.apply)
    jax.block_until_ready(forward(variables, x, lengths))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(variables, x, lengths))
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reslstm_jax.models",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=flags.HelpFormatter)  # fmt: skip
    parser.add_argument("--models", nargs="+", default=models.names())
    parser.add_argument("--hidden-sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument(
        "--seconds", type=float, default=3.7, help="utterance length (RAVDESS mean)"
    )
    parser.add_argument("--repeats", type=int, default=50, help="timed forward passes per model")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="a table, or one JSON object per line")  # fmt: skip
    flags.deprecated_switch(parser, "--json", "--format json", "format", "json")
    return flags.ranged(parser)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.models if name not in models.names()]
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {', '.join(models.names())}")
    if any(h < 1 for h in args.hidden_sizes):
        parser.error("--hidden-sizes: sizes must be positive integers")
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be > 0 and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    steps = 1 + int(args.seconds * SAMPLE_RATE) // HOP
    rows = []
    for name in args.models:
        # hidden sizes sweep the attention LSTMs; the seed models have their published size
        sizes = args.hidden_sizes if name in ("lstm_sa", "reslstm_sa") else [None]
        for hidden in sizes:
            model = models.get(name, **({} if hidden is None else {"hidden_size": hidden}))
            count = param_count(model)
            rows.append(
                {
                    "model": name,
                    "hidden_size": getattr(model, "hidden_size", None),
                    "params": count,
                    "kib_fp32": round(count * 4 / 1024, 1),
                    "kib_fp16": round(count * 2 / 1024, 1),
                    "frames": example_input(model, args.seconds)[2],
                    "latency_ms": round(forward_latency_ms(model, args.seconds, args.repeats), 3),
                }
            )
            if args.format == "json":
                print(json.dumps(rows[-1]), flush=True)
    if args.format != "json":
        device = jax.devices()[0]
        print(
            f"Model zoo: eval forward, batch 1, a {args.seconds} s utterance in each model's "
            f"features ({steps} frames for mfcc_chroma; Light-SERNet crops to 3 s), "
            f"median of {args.repeats} runs on {device.platform} ({device.device_kind})"
        )
        header = (f"{'model':<14}{'H':>5}{'params':>11}{'KiB fp32':>10}{'KiB fp16':>10}"
                  f"{'frames':>8}{'ms':>9}")  # fmt: skip
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['model']:<14}{r['hidden_size'] or '-':>5}{r['params']:>11,}"
                f"{r['kib_fp32']:>10}{r['kib_fp16']:>10}{r['frames']:>8}{r['latency_ms']:>9.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
