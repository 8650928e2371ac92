"""Where a result came from: package versions and the git commit of the code that produced it.

```python
env = provenance.environment()
env["packages"]["jax"]          # "0.9.2"
env["git"]                       # {"commit": "f9922ed...", "dirty": False}, or None
```
Every results.json holds `environment()` (docs/training.md), and every W&B run's config the
flat `run_config` of its results, so a number can be traced to the code and stack behind it.
"""

from __future__ import annotations

import functools
import pathlib
import platform
import subprocess
from importlib import metadata

# The distributions whose versions can change a number (the model, the features, the storage
# and the records); one that is not installed is recorded as None.
PACKAGES = ("reslstm-jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy",
            "librosa", "soundfile", "optuna", "wandb", "espeakng-loader")  # fmt: skip


def package_versions() -> dict[str, str | None]:
    """Installed version of each of `PACKAGES` (None: not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(directory: str | pathlib.Path | None = None) -> dict | None:
    """`{"commit": sha, "dirty": bool}` of the checkout holding `directory` (default: this
    package's source), or None when it is not in a git checkout (an installed wheel) or git
    is missing. `dirty`: tracked files differ from the commit."""
    where = pathlib.Path(directory) if directory else pathlib.Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Python, platform, package versions and git state (computed once per process)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_state(),
    }


def run_config(card: dict, settings: dict, objective: str, **extra) -> dict:
    """The flat record of what a run is trained on and with, for a W&B run config (known before
    training): corpus, protocol and its hash, features, normalisation, objective, epochs,
    seeds, model, package versions and git commit; `extra` (e.g. the sweep's budget) last.

    Args:
      card: the dataset's protocol card (`dataset.card`, results["card"]).
      settings: `RunSettings.to_json()` (results["settings"]).
      objective: "val" or "test" (what model selection and a sweep read).
    """
    env = environment()
    git = env["git"] or {}
    config = {
        "corpus": card["corpus"],
        "protocol": card["protocol"],
        "protocol_hash": card["utterance_ids_sha256"],
        "features": card["features"].get("name"),
        "feature_params": card["features"].get("params", {}),
        "normalisation": card["normalisation"],
        "objective": objective,
        "epochs": settings["epochs"],
        "seeds": len(settings["seeds"]),
        "model": settings["model"],
        "settings": settings,
        "versions": {k: v for k, v in env["packages"].items() if v is not None},
        "python": env["python"],
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
    }
    if card.get("source"):
        config["corpus_source"] = card["source"]
    config.update(extra)
    return config
