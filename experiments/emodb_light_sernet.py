"""Light-SERNet (Aftab et al., ICASSP 2022) on EMO-DB: the paper's protocol next to LOSO.

Command (a local EMO-DB copy: the `wav/` folder of the Berlin corpus, 535 files):

    python -m experiments.emodb_light_sernet --corpus emodb --data-dir ~/data/emodb

On RAVDESS (speaker-independent only), or the synthetic corpus with a reduced budget:

    python -m experiments.emodb_light_sernet --corpus ravdess --data-dir ~/data/RAVDESS
    python -m experiments.emodb_light_sernet --budget quick

Configurations: Light-SERNet on 3 s `tf_mfcc` input with cross-entropy (`ce`, the paper's
EMO-DB headline), with focal loss (`focal`, gamma 2), and with cross-entropy weighted by each
fold's class frequencies (`balanced`, `--class-weights balanced`: EMO-DB's classes hold 46 to
127 utterances); everything else is the recipe (Adam 1e-4, L2 1e-6 on the body convolutions,
exponential decay from epoch 60, 300 epochs, batch 32).

Setups on EMO-DB:
* `paper`: `emodb_random10`, the paper's speaker-dependent random folds with the best epoch
  picked on the test fold (LEAKY on both counts; for reproduction only). The paper's runs
  tested random pairs of 10 chunks (each utterance about twice); here every utterance is
  tested once, in 10 random folds.
* `loso`: `emodb_loso`, leave one speaker out with a validation speaker (our default).
On RAVDESS: `speaker_independent` (`ravdess_paper`, the ResLSTM-SA paper's actor folds).

Expected runtime: the full budget (5 seeds x 10 folds x 300 epochs per configuration) is GPU
work: on a 2-core CPU Light-SERNet trains at 25 utterances per second (docs/performance.md),
about 16 hours per seed on EMO-DB. `--budget quick` is a smoke run of the whole pipeline (1 seed
x 1 epoch on 0.5 s crops instead of 3 s): 7 min 21 s measured on the synthetic corpus on a
2-core CPU with the first two configurations, extracting its features on first use (the third
adds its training time).

Expected result on real EMO-DB (the paper's matrices, 3 s, CE): UA 94.15%, WA 94.21% under the
paper protocol (`paper`). An independent run of the current official code got UA 94.90%. Expect
much lower numbers under leave-one-speaker-out (`loso`); the synthetic corpus gives no
comparable number.

Output: `runs/experiments/emodb_light_sernet/<setup>/<config>/` training runs, `report.md`,
`report.tex` (CE vs focal and CE vs balanced paired tests in each setup) and `plots/`.
Rerunning resumes.
"""

from __future__ import annotations

import sys

from experiments import setup_files
from experiments.common import main

# The configurations, setups, budgets and pairs are in experiments/setups/emodb_light_sernet.yaml,
# a file of the same form as a user's own (`python -m experiments.run FILE.yaml`).
EXPERIMENT = setup_files.load("emodb_light_sernet", doc=__doc__)

if __name__ == "__main__":
    from reslstm_jax import interrupts

    sys.exit(interrupts.run(main, EXPERIMENT))
