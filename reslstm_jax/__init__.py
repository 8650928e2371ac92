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

from reslstm_jax import interop, models, nn
from reslstm_jax.params import count_params, param_count

__version__ = "0.1.0"

__all__ = ["count_params", "interop", "models", "nn", "param_count", "__version__"]
