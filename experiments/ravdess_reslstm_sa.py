"""Reproduce the ResLSTM-SA paper's RAVDESS table, with the reference's setup and ours side by side.

Command (a local RAVDESS copy, speech part: `Actor_01` ... `Actor_24`):

    python -m experiments.ravdess_reslstm_sa --data-dir ~/data/RAVDESS

Reduced budget on the embedded synthetic corpus (no download; what CI can afford):

    python -m experiments.ravdess_reslstm_sa --budget quick

Configurations: ResLSTM-SA h32/h64/h128 and LSTM-SA h32/h64 (one attention vector) and h128
with two attention vectors (the paper's h128 row is the k = 2 run, 91,656 parameters), each
with the weight decay the paper publishes for it, the other hyperparameters at the notebook's
values. Protocol: the paper's 5 actor folds (`ravdess_paper`), 10 seeds x 5 folds x 100
epochs, best epoch by validation UAR. Two setups, each its own table:

* `paper`: the reference as published: unmasked attention / BatchNorm (`paper_compat`),
  global z-normalisation over all 1440 files (test actors included: LEAKY), and seeds that
  share each fold's initialisation (the reference reseeds per fold).
* `fair`: our defaults: masked attention, per-fold normalisation from training actors only,
  independent seeds.

Expected runtime: full budget, 12 configurations x 50 models x 100 epochs: about 12 x 4.2 min
on a 2-core CPU (one process; see docs/performance.md), minutes on a GPU. `--budget quick`
(2 seeds x 5 folds x 4 epochs): about 3 minutes on a 2-core CPU with cached features.

Expected result on real RAVDESS (the paper's pooled out-of-fold UAR, mean +- population std
over 10 runs, max): ResLSTM-SA h32 0.6130 +- 0.0111 (0.6315), h64 0.6232 +- 0.0119 (0.6517),
h128 0.6107 +- 0.0134 (0.6348); LSTM-SA h32 0.5352 +- 0.0123 (0.5547), h64 0.5751 +- 0.0108
(0.5996), h128 (k = 2) 0.5895 +- 0.0076 (0.6022). The paper tuned on test UAR, so expect the
`fair` setup to land lower; the synthetic corpus gives no comparable number.

Output (`--out`, default runs/experiments/ravdess_reslstm_sa): `<setup>/<config>/` training runs
(results.json, best/, inference.json: usable by `reslstm_jax.predict` and `experiments.report`),
`report.md` and `report.tex` (one table per setup, paired tests of ResLSTM-SA vs LSTM-SA at
each size), `plots/`. Rerunning the command resumes: finished configurations are kept.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

# name -> (model, model config, weight decay published for it)
CONFIGS = {
    "reslstm_sa_h32": ("reslstm_sa", {"hidden_size": 32}, 1.6e-3),
    "reslstm_sa_h64": ("reslstm_sa", {"hidden_size": 64}, 1.6e-3),
    "reslstm_sa_h128": ("reslstm_sa", {"hidden_size": 128}, 1.1e-3),
    "lstm_sa_h32": ("lstm_sa", {"hidden_size": 32}, 7.0e-5),
    "lstm_sa_h64": ("lstm_sa", {"hidden_size": 64}, 4.9e-2),
    "lstm_sa_h128": ("lstm_sa", {"hidden_size": 128, "num_att": 2}, 2.1e-4),
}
# setup -> (normalisation, paper_compat, share_init_across_seeds)
SETUPS = {"paper": ("global", True, True), "fair": ("fold", False, False)}
BUDGETS = {"full": {"seeds": 10, "epochs": 100}, "quick": {"seeds": 2, "epochs": 4}}
PAIRS = [("reslstm_sa_h32", "lstm_sa_h32"), ("reslstm_sa_h64", "lstm_sa_h64"),
         ("reslstm_sa_h128", "lstm_sa_h128")]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.ravdess_reslstm_sa",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--data-dir", help="RAVDESS speech directory (default: the synthetic corpus)")
    p.add_argument("--budget", choices=BUDGETS, default="full")
    p.add_argument("--seeds", type=int, help="override the budget's seeds")
    p.add_argument("--epochs", type=int, help="override the budget's epochs")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated subset of: {', '.join(CONFIGS)}")  # fmt: skip
    p.add_argument("--setups", default="paper,fair", help="comma-separated subset of: paper, fair")
    p.add_argument("--out", default="runs/experiments/ravdess_reslstm_sa")
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    p.add_argument("--workers", type=int, help="feature extraction processes")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_list(p, flag: str, value: str, known) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        p.error(f"{flag}: unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(known)}")
    return items


def run(args, configs: list[str], setups: list[str]) -> pathlib.Path:
    """Train every setup x configuration (resuming), then write the report and plots."""
    from reslstm_jax import data, report, train

    budget = {**BUDGETS[args.budget]}
    budget.update({k: getattr(args, k) for k in ("seeds", "epochs") if getattr(args, k)})
    out = pathlib.Path(args.out)
    corpus = "ravdess" if args.data_dir else None
    for setup in setups:
        normalisation, paper_compat, shared_init = SETUPS[setup]
        dataset = data.prepare(corpus, args.data_dir, protocol="ravdess_paper",
                               normalisation=normalisation, cache_dir=args.cache_dir,
                               workers=args.workers, progress=not args.no_progress)  # fmt: skip
        for name in configs:
            run_dir = out / setup / name
            if (run_dir / "results.json").is_file():
                print(f"{setup}/{name}: done earlier, kept")
                continue
            model, config, weight_decay = CONFIGS[name]
            config = {**config, "paper_compat": paper_compat}
            settings = train.RunSettings(
                model=model, model_config=tuple(sorted(config.items())),
                seeds=tuple(range(budget["seeds"])), epochs=budget["epochs"],
                weight_decay=weight_decay, share_init_across_seeds=shared_init,
            )  # fmt: skip
            results = train.fit(dataset, settings, out_dir=run_dir,
                                progress=not args.no_progress)  # fmt: skip
            results["edge"] = train.edge_metrics(results, dataset, latency=not args.no_latency)
            results["experiment"] = {"name": "ravdess_reslstm_sa", "setup": setup,
                                     "config": name, "budget": args.budget}  # fmt: skip
            train.write_json(run_dir / "card.json", dataset.card)
            train.write_json(run_dir / "results.json", results)
            print(f"{setup}/{name}: " + train.summary_lines(results)[0])
    configs_done = report.load_paths([out])
    tables = report.build_tables(configs_done)
    text = report.format_markdown(tables)
    comparisons = []
    for setup in setups:
        for a, b in PAIRS:
            found = [c for c in configs_done if c.source.endswith(f"/{setup}/{a}/results.json")
                     or c.source.endswith(f"/{setup}/{b}/results.json")]  # fmt: skip
            if len(found) == 2:
                first, second = sorted(found, key=lambda c: f"/{a}/" not in c.source)
                comparisons.append(f"[{setup}] " + report.format_comparison(
                    report.compare(first, second)))  # fmt: skip
    if comparisons:
        text += "\nPaired tests (ResLSTM-SA vs LSTM-SA, same folds x seeds):\n\n" + "\n\n".join(
            comparisons
        ) + "\n"  # fmt: skip
    train.write_text_atomic(out / "report.md", text)
    train.write_text_atomic(out / "report.tex", report.format_latex(tables))
    from reslstm_jax import plots

    plots.for_configs(out / "plots", tables, configs_done)
    print(text)
    print(f"wrote {out / 'report.md'}, {out / 'report.tex'} and {out / 'plots'}")
    return out


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    configs = parse_list(p, "--configs", args.configs, CONFIGS)
    setups = parse_list(p, "--setups", args.setups, SETUPS)
    for flag in ("seeds", "epochs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.data_dir and not pathlib.Path(args.data_dir).expanduser().is_dir():
        p.error(f"--data-dir {args.data_dir}: no such directory")
    from reslstm_jax import checkpoint, protocols
    from reslstm_jax.corpora.base import CorpusError

    try:
        run(args, configs, setups)
    except (CorpusError, protocols.ProtocolError, checkpoint.CheckpointMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
