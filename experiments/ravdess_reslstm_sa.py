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

Expected runtime: full budget, one configuration = 50 models x 100 epochs x 1020 training
utterances; at the measured 4,378-5,334 utt/s of ResLSTM-SA h64 (median 4,890 over six runs;
M = 50 on two CPU devices, the experiments' default on a 2-core CPU; docs/performance.md) that
is about 17 minutes, so about 3.5 hours for all 12 (no GPU measurement yet).
`--budget quick` (2 seeds x 5 folds x 4 epochs, all 12): 5 min 15 s measured on the synthetic
corpus on a 2-core CPU with cached features.

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

import sys

from experiments import setup_files
from experiments.common import main

# The configurations, setups, budgets and pairs are in experiments/setups/ravdess_reslstm_sa.yaml,
# a file of the same form as a user's own (`python -m experiments.run FILE.yaml`).
EXPERIMENT = setup_files.load("ravdess_reslstm_sa", doc=__doc__)

if __name__ == "__main__":
    from reslstm_jax import interrupts

    sys.exit(interrupts.run(main, EXPERIMENT))
