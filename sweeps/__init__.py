"""The sweep engine: `python -m sweeps.run --space NAME` (Optuna ask/tell, grouped training)."""
