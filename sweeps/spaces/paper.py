"""The reference notebook's TPE space for one model (ResLSTM-SA h64 by default).

lr log-uniform [1e-5, 3e-2], batch size {4, 8, 16, 32, 64}, dropout [0.02, 0.5],
weight decay log-uniform [2e-5, 4e-2], T_0 {1, 2, 3, 5, 10}; parameter names as the notebook
(`lr`, `batch_size`, `dropout_rate`, `wd`, `t_0_loop`). Single objective: UAR.
"""

DESCRIPTION = "TPE over lr, batch size, dropout, weight decay, T_0 (the notebook's ranges)"
OBJECTIVES = (("uar", "maximize"),)
SAMPLER = "tpe"
FIXED = {"model": "reslstm_sa", "hidden_size": 64}


def suggest(trial) -> dict:
    return {
        "lr": trial.suggest_float("lr", 1e-5, 3e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [4, 8, 16, 32, 64]),
        "dropout": trial.suggest_float("dropout_rate", 0.02, 0.5),
        "weight_decay": trial.suggest_float("wd", 2e-5, 4e-2, log=True),
        "t0": trial.suggest_categorical("t_0_loop", [1, 2, 3, 5, 10]),
    }
