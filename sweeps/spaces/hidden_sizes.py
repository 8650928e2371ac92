"""LSTM-SA vs ResLSTM-SA over hidden sizes: the paper's Pareto front (UAR vs parameters)."""

DESCRIPTION = "grid: model in {lstm_sa, reslstm_sa} x hidden size in {16, 32, 64, 128}"
OBJECTIVES = (("uar", "maximize"), ("n_params", "minimize"))
GRID = [
    {"model": model, "hidden_size": hidden}
    for model in ("lstm_sa", "reslstm_sa")
    for hidden in (16, 32, 64, 128)
]
