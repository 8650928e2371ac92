"""ONNX graphs of trained models, built with `onnx.helper` (no converter).

```python
from reslstm_jax.export import graphs
proto = graphs.attention_lstm(model, variables, mean, std)   # onnx.ModelProto
# inputs: features [B, T, D] float32 (raw, unnormalised), lengths [B] int32
# outputs: logits [B, C] float32, attention [B, T] float32
```

The LSTMs are ONNX's own `LSTM` operator with `sequence_lens`, so a runtime runs its fused
kernel and frames beyond a row's length take no part, as in the JAX model's masked mode.
Normalisation (the fold's mean and std) is the graph's first operation; the BatchNorms in
evaluation mode become one multiply-add per feature (scale = weight / sqrt(var + eps), shift =
bias - mean x scale), equal to the JAX model's up to float rounding.
"""

from __future__ import annotations

import numpy as np

OPSET = 17
# gate blocks: ours (PyTorch's) are i, f, g, o; ONNX's LSTM wants i, o, f, c
_ONNX_GATES = (0, 3, 1, 2)


class Unsupported(ValueError):
    """A model configuration the export does not handle (the message says why)."""


def _gates(a: np.ndarray, hidden: int) -> np.ndarray:
    blocks = [a[i * hidden : (i + 1) * hidden] for i in range(4)]
    return np.concatenate([blocks[i] for i in _ONNX_GATES])


class _Graph:
    """Nodes and constants of one graph, with fresh names."""

    def __init__(self):
        self.nodes, self.constants, self._n = [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1,
           **attrs) -> str | list[str]:  # fmt: skip
        from onnx import helper

        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    def squeeze(self, x: str, axis: int) -> str:
        return self.op("Squeeze", [x, self.const("axis", np.array([axis], np.int64))])

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.const("axis", np.array([axis], np.int64))])

    def dense(self, params: dict, x: str) -> str:
        """x @ weight.T + bias (`nn.dense`)."""
        weight = self.const("weight", np.asarray(params["weight"], np.float32).T)
        bias = self.const("bias", np.asarray(params["bias"], np.float32))
        return self.op("Add", [self.op("MatMul", [x, weight]), bias])

    def lstm(self, params: dict, x_tm: str, lengths: str, hidden: int) -> str:
        """x_tm: [T, B, D] -> [T, B, H] (ONNX LSTM, forward, sequence_lens)."""
        w = self.const("W", _gates(np.asarray(params["weight_ih"], np.float32), hidden)[None])
        r = self.const("R", _gates(np.asarray(params["weight_hh"], np.float32), hidden)[None])
        b = self.const("B", np.concatenate([
            _gates(np.asarray(params["bias_ih"], np.float32), hidden),
            _gates(np.asarray(params["bias_hh"], np.float32), hidden)])[None])  # fmt: skip
        y = self.op("LSTM", [x_tm, w, r, b, lengths], "lstm", hidden_size=hidden)
        return self.squeeze(y, 1)  # [T, 1, B, H] -> [T, B, H]

    def batch_norm(self, params: dict, stats: dict, x: str, eps: float) -> str:
        """Evaluation-mode BatchNorm over the last axis, as one multiply-add."""
        scale = np.asarray(params["weight"], np.float32) / np.sqrt(
            np.asarray(stats["running_var"], np.float32) + np.float32(eps))  # fmt: skip
        shift = np.asarray(params["bias"], np.float32) - np.asarray(
            stats["running_mean"], np.float32) * scale  # fmt: skip
        scaled = self.op("Mul", [x, self.const("bn_scale", scale.astype(np.float32))])
        return self.op("Add", [scaled, self.const("bn_shift", shift.astype(np.float32))])


def attention_lstm(model, variables: dict, mean: np.ndarray, std: np.ndarray,
                   name: str | None = None):  # fmt: skip
    """The ONNX graph of an LSTM-SA / ResLSTM-SA member (`reslstm_jax.models.attention_lstm`)
    in evaluation mode with its fold's normalisation (`mean`, `std`: [D]).

    Raises `Unsupported` in parity mode (`paper_compat`: the reference's unmasked statistics
    depend on the batch's longest row, which an exported model should not)."""
    import onnx
    from onnx import TensorProto, helper

    from reslstm_jax import nn

    if model.paper_compat:
        raise Unsupported(f"{model.name} in paper_compat mode: its outputs depend on the "
                          "other rows of a batch; export a model trained in the default "
                          "masked mode")  # fmt: skip
    params, stats = variables["params"], variables["batch_stats"]
    g = _Graph()
    # valid frames [B, T]: t < length
    steps = g.op("Gather", [g.op("Shape", ["features"]), g.const("one", np.int64(1))])
    frames = g.op("Range", [g.const("start", np.int64(0)), steps, g.const("delta", np.int64(1))])
    length64 = g.op("Cast", ["lengths"], to=TensorProto.INT64)
    valid = g.op("Less", [g.unsqueeze(frames, 0), g.unsqueeze(length64, 1)])
    # normalised features, zero on padded frames (as the JAX model's input)
    mean_c = g.const("mean", np.asarray(mean, np.float32))
    std_c = g.const("std", np.asarray(std, np.float32))
    normed = g.op("Div", [g.op("Sub", ["features", mean_c]), std_c])
    x = g.op("Where", [g.unsqueeze(valid, 2), normed, g.const("zero", np.float32(0.0))])
    h = g.op("Transpose", [x], perm=[1, 0, 2])  # [T, B, D]
    for lstm_name, bn_name in model.block_names:
        out = g.lstm(params[lstm_name], h, "lengths", model.input_size)
        h = g.batch_norm(params[bn_name], stats[bn_name], g.op("Add", [out, h]), nn.BN_EPS)
    top = g.lstm(params[model.top_lstm_name], h, "lengths", model.hidden_size)
    seq = g.op("Transpose", [top], perm=[1, 0, 2])  # [B, T, H]
    u = g.const("attention_vector", np.asarray(params["attention_vector"], np.float32))
    scores = g.op("MatMul", [seq, u])  # [B, T, K]
    if model.att_combine == "linear":
        weights = np.asarray(params["head_combine"]["weight"], np.float32).reshape(-1, 1)
        energy = g.squeeze(g.op("MatMul", [scores, g.const("combine", weights)]), 2)
    else:
        energy = g.op("ReduceMean", [scores], axes=[2], keepdims=0)
    masked = g.op("Where", [valid, energy, g.const("minus_inf", np.float32(-np.inf))])
    attention = g.op("Softmax", [masked], axis=1)  # [B, T]
    context = g.squeeze(g.op("MatMul", [g.unsqueeze(attention, 1), seq]), 1)  # [B, H]
    context = g.batch_norm(params["bn"], stats["bn"], context, nn.BN_EPS)
    logits = g.dense(params["fc"], context)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    g.nodes.append(helper.make_node("Identity", [attention], ["attention"]))
    graph = helper.make_graph(
        g.nodes, name or model.name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                       ["batch", "frames", model.input_size]),
         helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", model.num_classes]),
         helper.make_tensor_value_info("attention", TensorProto.FLOAT, ["batch", "frames"])],
        initializer=g.constants,
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="reslstm-jax")  # fmt: skip
    onnx.checker.check_model(proto, full_check=True)
    return proto
