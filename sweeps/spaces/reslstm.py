"""ResLSTM-SA architecture and training hyperparameters together, for the UAR/size front."""

DESCRIPTION = (
    "NSGA-II over hidden size, residual blocks, attention vectors, lr, weight decay, dropout, T_0"
)
OBJECTIVES = (("uar", "maximize"), ("n_params", "minimize"))
SAMPLER = "nsga2"
FIXED = {"model": "reslstm_sa", "batch_size": 32}


def suggest(trial) -> dict:
    return {
        "hidden_size": trial.suggest_categorical("hidden_size", [16, 32, 48, 64, 96, 128]),
        "res_blocks": trial.suggest_int("res_blocks", 1, 3),
        "num_att": trial.suggest_categorical("num_att", [1, 2, 4]),
        "lr": trial.suggest_float("lr", 3e-5, 3e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 2e-5, 2e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.1, 0.5),
        "t0": trial.suggest_categorical("t0", [1, 2, 3, 5, 10]),
    }
