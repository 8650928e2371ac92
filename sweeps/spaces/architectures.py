"""The whole zoo on one Pareto front: LSTM-SA, ResLSTM-SA, Light-SERNet and DS-LSTM.

Each family trains with its own features and recipe (`reslstm_jax.families`): the attention
LSTMs on mfcc_chroma with per-fold normalisation, Light-SERNet on 3 s tf_mfcc, DS-LSTM on its
two log-mel spectrograms and MFCC39. The budget's epochs apply to every family alike. The
front spans about 4k (LSTM-SA h16) to 3.7M (DS-LSTM, both branches) parameters.
"""

DESCRIPTION = (
    "grid: Light-SERNet, DS-LSTM (DS branch, full), LSTM-SA and ResLSTM-SA at hidden sizes "
    "16-128 (4k to 3.7M parameters)"
)
OBJECTIVES = (("uar", "maximize"), ("n_params", "minimize"))
# The first points are the families that need their own features, so that a short run
# (--trials 3) already spans the families.
GRID = [
    {"model": "light_sernet"},
    {"model": "ds_lstm", "branches": "ds"},
    {"model": "lstm_sa", "hidden_size": 32},
    {"model": "reslstm_sa", "hidden_size": 64},
    {"model": "ds_lstm", "branches": "full"},
    {"model": "lstm_sa", "hidden_size": 16},
    {"model": "lstm_sa", "hidden_size": 64},
    {"model": "lstm_sa", "hidden_size": 128},
    {"model": "reslstm_sa", "hidden_size": 16},
    {"model": "reslstm_sa", "hidden_size": 32},
    {"model": "reslstm_sa", "hidden_size": 128},
]
