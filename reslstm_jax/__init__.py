"""reslstm-jax: lightweight speech-emotion-recognition models in JAX.

Public contract:
```python
import jax, reslstm_jax as rj
model = rj.models.get("reslstm_sa", hidden_size=64, input_size=46, num_classes=8)
variables = model.init(jax.random.key(0))      # {"params": ..., "batch_stats": ...}
rj.count_params(variables["params"])            # trainable parameters, an int
logits, extras = model.apply(variables, x, lengths, train=False)  # extras: {"attention": ...}
variables = rj.interop.from_torch_state_dict(model, state_dict)
```
"""

import importlib

__version__ = "0.1.0"

__all__ = ["count_params", "interop", "models", "nn", "param_count", "__version__"]

# Loaded on first use (PEP 562), so that `import reslstm_jax.X` does not import JAX: the
# features, corpora and the ONNX runtime (`python -m reslstm_jax.predict` on an export) run
# without it.
_LAZY = {"interop": None, "models": None, "nn": None, "count_params": "params",
         "param_count": "params"}  # fmt: skip


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'reslstm_jax' has no attribute {name!r}")
    module = importlib.import_module(f"reslstm_jax.{_LAZY[name] or name}")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_LAZY])
