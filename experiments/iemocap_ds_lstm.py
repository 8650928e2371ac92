"""DS-LSTM (Wang et al., ICASSP 2020) on IEMOCAP: the paper's protocol next to leaving sessions out.

Command (a local IEMOCAP copy, `Session1` ... `Session5`; 4 classes with excited merged into
happy, 5531 utterances):

    python -m experiments.iemocap_ds_lstm --corpus iemocap --data-dir ~/data/IEMOCAP

On RAVDESS (speaker-independent only), or the synthetic corpus with a reduced budget:

    python -m experiments.iemocap_ds_lstm --corpus ravdess --data-dir ~/data/RAVDESS
    python -m experiments.iemocap_ds_lstm --budget quick

Configurations: the full model (`ds_lstm_full`: DS branch + MFCC-LSTM branch, 3,732,296
parameters) and the DS branch alone (`ds_lstm_ds`, M_DS-LSTM, 3,217,092), both with the recipe
(two log-mel spectrograms + MFCC39, Adam 1e-3 halved at epochs 10/20/30, 50 epochs, batch 128,
two-head loss).

Setups on IEMOCAP:
* `paper`: `iemocap_random5`, the paper's speaker-dependent 5-fold random split with the best
  epoch picked on the test fold (LEAKY on both counts; for reproduction only). The paper also
  took the maximum over epochs separately for WA and UA, which no table here does.
* `session`: `iemocap_session`, leave one session out with a validation session (our default).
On RAVDESS: `speaker_independent` (`ravdess_paper`).

Expected runtime: the full budget (3 seeds x 5 folds x 50 epochs per configuration) is GPU
work: on a 2-core CPU the full DS-LSTM trains at 3.8 utterances per second
(docs/performance.md), about 3.4 days per seed on IEMOCAP. `--budget quick` is a smoke run of the
whole pipeline (1 seed x 1 epoch of a small DS-LSTM: H 16, CNN channels 4 and 2): 2 min 46 s
measured on the synthetic corpus on a 2-core CPU, extracting its features on first use.

Expected result on real IEMOCAP under the paper protocol (`paper`): the paper reports WA 72.7%,
UA 73.3% for the full model and WA 69.4%, UA 69.5% for the DS branch; the authors' logs give
WA 70.5-70.9%, UA 71.0-71.6% (full, default configuration) and WA 67.3%, UA 67.7% (DS only).
Expect lower numbers leaving sessions out; the synthetic corpus gives no comparable number.

Output: `runs/experiments/iemocap_ds_lstm/<setup>/<config>/` training runs, `report.md`,
`report.tex` (full vs DS-only paired tests in each setup) and `plots/`. Rerunning resumes.
"""

from __future__ import annotations

import sys

from experiments import setup_files
from experiments.common import main

# The configurations, setups, budgets and pairs are in experiments/setups/iemocap_ds_lstm.yaml,
# a file of the same form as a user's own (`python -m experiments.run FILE.yaml`).
EXPERIMENT = setup_files.load("iemocap_ds_lstm", doc=__doc__)

if __name__ == "__main__":
    from reslstm_jax import interrupts

    sys.exit(interrupts.run(main, EXPERIMENT))
