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

import hashlib

import numpy as np

OPSET = 17
# onnx.TensorProto's INT64 and FLOAT (onnx is imported only when a graph is built)
TensorProto_INT64, TensorProto_FLOAT = 7, 1
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
        self._known: dict = {}  # (dtype, shape, bytes) -> the name of an equal constant

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value) -> str:
        """A constant (an initializer), stored once: an equal one (e.g. DS-LSTM's recurrent
        weights, used by each of its unrolled steps) is the same tensor."""
        from onnx import numpy_helper

        value = np.asarray(value)  # (0-d stays 0-d: Gather's scalar indices)
        key = (value.dtype.str, value.shape, hashlib.sha256(value.tobytes()).digest())
        if key not in self._known:
            self._known[key] = self.name(hint)
            self.constants.append(numpy_helper.from_array(value, self._known[key]))
        return self._known[key]

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

    def batch_norm(self, params: dict, stats: dict, x: str, eps: float,
                   shape: tuple = (-1,)) -> str:  # fmt: skip
        """Evaluation-mode BatchNorm as one multiply-add; `shape` broadcasts the per-feature
        constants onto `x` (the last axis by default; (-1, 1, 1) for NCHW channels)."""
        scale = np.asarray(params["weight"], np.float32) / np.sqrt(
            np.asarray(stats["running_var"], np.float32) + np.float32(eps))  # fmt: skip
        shift = np.asarray(params["bias"], np.float32) - np.asarray(
            stats["running_mean"], np.float32) * scale  # fmt: skip
        scaled = self.op("Mul", [x, self.const("bn_scale", scale.reshape(shape))])
        return self.op("Add", [scaled, self.const("bn_shift", shift.reshape(shape))])

    def valid_frames(self, x: str) -> str:
        """[B, T] bool: the frames of `x` [B, T, D] within each row's `lengths`."""
        steps = self.op("Gather", [self.op("Shape", [x]), self.const("one", np.int64(1))])
        frames = self.op("Range", [self.const("start", np.int64(0)), steps,
                                   self.const("delta", np.int64(1))])  # fmt: skip
        length64 = self.op("Cast", ["lengths"], to=TensorProto_INT64)
        return self.op("Less", [self.unsqueeze(frames, 0), self.unsqueeze(length64, 1)])

    def zero_padding(self, x: str, valid: str) -> str:
        """`x` [B, T, D] with 0 on the frames that are not `valid` [B, T]."""
        zero = self.const("zero", np.float32(0.0))
        return self.op("Where", [self.unsqueeze(valid, 2), x, zero])

    def normalised_input(self, mean: np.ndarray, std: np.ndarray) -> tuple[str, str]:
        """(features normalised with the fold's statistics and zero on padded frames [B, T, D],
        valid frames [B, T] bool), from the graph inputs `features` and `lengths`."""
        valid = self.valid_frames("features")
        mean_c = self.const("mean", np.asarray(mean, np.float32))
        std_c = self.const("std", np.asarray(std, np.float32))
        normed = self.op("Div", [self.op("Sub", ["features", mean_c]), std_c])
        return self.zero_padding(normed, valid), valid

    def model(self, model, name: str | None, outputs: dict[str, str],
              inputs: dict[str, list] | None = None):  # fmt: skip
        """The checked ModelProto: float inputs `inputs` ({name: shape}; by default `features`
        [batch, frames, D]) and `lengths` [batch] int32, `outputs` {graph output name: node
        output} ("logits" [batch, C], "attention" [batch, frames])."""
        import onnx
        from onnx import TensorProto, helper

        shapes = {"logits": ["batch", model.num_classes], "attention": ["batch", "frames"]}
        inputs = inputs or {"features": ["batch", "frames", model.input_size]}
        for out, node in outputs.items():
            self.nodes.append(helper.make_node("Identity", [node], [out]))
        graph = helper.make_graph(
            self.nodes, name or model.name,
            [*(helper.make_tensor_value_info(key, TensorProto.FLOAT, shape)
               for key, shape in inputs.items()),
             helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, shapes[out])
             for out in outputs],
            initializer=self.constants,
        )  # fmt: skip
        opsets = [helper.make_opsetid("", OPSET)]
        # The IR version: the lowest that opset 17 needs (8), not the newest the onnx package
        # writes (14 with onnx 1.23), which runtimes older than onnxruntime 1.32 refuse to
        # load; the graph uses nothing of the later IR versions.
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="reslstm-jax",
                                  ir_version=helper.find_min_ir_version_for(opsets))  # fmt: skip
        onnx.checker.check_model(proto, full_check=True)
        return proto


def attention_lstm(model, variables: dict, mean: np.ndarray, std: np.ndarray,
                   name: str | None = None):  # fmt: skip
    """The ONNX graph of an LSTM-SA / ResLSTM-SA member (`reslstm_jax.models.attention_lstm`)
    in evaluation mode with its fold's normalisation (`mean`, `std`: [D]).

    Raises `Unsupported` in parity mode (`paper_compat`: the reference's unmasked statistics
    depend on the batch's longest row, which an exported model should not)."""
    from reslstm_jax import nn

    if model.paper_compat:
        raise Unsupported(f"{model.name} in paper_compat mode: its outputs depend on the "
                          "other rows of a batch; export a model trained in the default "
                          "masked mode")  # fmt: skip
    params, stats = variables["params"], variables["batch_stats"]
    g = _Graph()
    x, valid = g.normalised_input(mean, std)
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
    return g.model(model, name, {"logits": logits, "attention": attention})


def light_sernet(model, variables: dict, mean: np.ndarray, std: np.ndarray,
                 name: str | None = None):  # fmt: skip
    """The ONNX graph of a Light-SERNet member (`reslstm_jax.models.light_sernet`) in evaluation
    mode: Keras's "same" convolutions and average pools are ONNX's `SAME_UPPER` (the extra pad
    at the end; the pools exclude padded cells, `count_include_pad=0`), in NCHW with the time
    axis as H and the MFCCs as W. Output: logits only (the network has no attention)."""
    from reslstm_jax.models import light_sernet as ls

    params, stats = variables["params"], variables["batch_stats"]
    g = _Graph()
    x, _ = g.normalised_input(mean, std)
    h = g.unsqueeze(x, 1)  # [B, 1, T, F]

    def conv_bn_relu(block: str, h: str) -> str:
        p = params[block]
        kernel = np.asarray(p["conv"]["kernel"], np.float32).transpose(3, 2, 0, 1)  # OIHW
        inputs = [h, g.const("kernel", kernel)]
        if "bias" in p["conv"]:
            inputs.append(g.const("bias", np.asarray(p["conv"]["bias"], np.float32)))
        y = g.op("Conv", inputs, "conv", auto_pad="SAME_UPPER",
                 kernel_shape=list(kernel.shape[2:]))  # fmt: skip
        y = g.batch_norm(p["bn"], stats[block]["bn"], y, model.bn_eps, shape=(-1, 1, 1))
        return g.op("Relu", [y])

    def pool(h: str, window: tuple[int, int]) -> str:
        return g.op("AveragePool", [h], "pool", auto_pad="SAME_UPPER", kernel_shape=list(window),
                    strides=list(window), count_include_pad=0)  # fmt: skip

    paths = [pool(conv_bn_relu(block, h), ls.PATH_POOL) for block, _ in ls.PATHS]
    h = g.op("Concat", paths, axis=1)
    for block, _, _, window in ls.LFLBS:
        h = conv_bn_relu(block, h)
        h = h if window is None else pool(h, window)
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [h])], axis=1)  # [B, 320]
    dense = params["dense"]
    logits = g.op("Add", [g.op("MatMul", [pooled, g.const("kernel", np.asarray(dense["kernel"],
                                                                                np.float32))]),
                          g.const("bias", np.asarray(dense["bias"], np.float32))])  # fmt: skip
    return g.model(model, name, {"logits": logits})


def _ds_cnn(g: _Graph, params: dict, stats: dict, spectrogram: str) -> str:
    """One spectrogram's CNN (`ds_lstm.conv_block` x stages): [B, frames, mels] ->
    [B, T', C * F'] (channel-major features, as the reference's flatten)."""
    from reslstm_jax import nn

    h = g.unsqueeze(g.op("Transpose", [spectrogram], perm=[0, 2, 1]), 1)  # [B, 1, F, T]
    for i in range(len(params)):
        p, s = params[f"lflb{i}"], stats[f"lflb{i}"]
        weight = np.asarray(p["conv"]["weight"], np.float32)  # OIHW already (torch layout)
        pads = [(k - 1) // 2 for k in weight.shape[2:]]  # torch: symmetric, floor
        y = g.op("Conv", [h, g.const("kernel", weight),
                          g.const("bias", np.asarray(p["conv"]["bias"], np.float32))],
                 "conv", kernel_shape=list(weight.shape[2:]), pads=pads * 2)  # fmt: skip
        y = g.op("Relu", [g.batch_norm(p["bn"], s["bn"], y, nn.BN_EPS, shape=(-1, 1, 1))])
        h = g.op("MaxPool", [y], "pool", kernel_shape=[2, 2], strides=[2, 2])  # floors
    time_first = g.op("Transpose", [h], perm=[0, 3, 1, 2])  # [B, T', C, F']
    return g.op("Reshape", [time_first, g.const("shape", np.array([0, 0, -1], np.int64))])


def _ds_layer(g: _Graph, model, params: dict, stats: dict, x: str, y: str, dx: int,
              last: bool) -> str:  # fmt: skip
    """One DS-LSTM layer (`ds_lstm.ds_lstm_layer`, evaluation mode), its `model.steps` steps
    unrolled (a static count): x [B, T, dx], y [B, T, dy] -> BN_out(h_t) stacked [B, T, H],
    or their mean over time [B, H] for the `last` layer."""
    from reslstm_jax import nn

    hidden, dy = model.hidden_size, model.y_size
    w_g, w_t, w_f = (np.asarray(params[k]["weight"], np.float32) for k in ("W", "W_T", "W_F"))

    def matmul(a: str, weight: np.ndarray) -> str:
        return g.op("MatMul", [a, g.const("weight", np.ascontiguousarray(weight.T))])

    def bias(a: str, key: str) -> str:
        return g.op("Add", [a, g.const("bias", np.asarray(params[key]["bias"], np.float32))])

    # the input parts of the three Linear layers, for all steps at once (as the JAX layer)
    g_in = bias(g.op("Add", [matmul(x, w_g[:, :dx]), matmul(y, w_g[:, dx : dx + dy])]), "W")
    t_in = bias(matmul(x, w_t[:, :dx]), "W_T")
    f_in = bias(matmul(y, w_f[:, :dy]), "W_F")
    w_h = np.concatenate([w_g[:, dx + dy :], w_t[:, dx:], w_f[:, dy:]], axis=0)  # [6H, H]
    sizes = g.const("split", np.array([4 * hidden, hidden, hidden], np.int64))
    if model.gate_norm == "batchnorm":  # BN_t: per-step running statistics, shared affine
        gamma = np.asarray(params["bn_t"]["weight"], np.float32)
        bn_scale = gamma / np.sqrt(np.asarray(stats["bn_t"]["running_var"], np.float32)
                                   + np.float32(nn.BN_EPS))  # fmt: skip
        bn_shift = (np.asarray(params["bn_t"]["bias"], np.float32)
                    - np.asarray(stats["bn_t"]["running_mean"], np.float32) * bn_scale)  # fmt: skip
    h = c = None  # zero state: step 0 skips the recurrent products (exactly 0 in JAX)
    outs = []
    for t in range(model.steps):
        at = g.const("t", np.int64(t))
        g_t, t_t, f_t = (g.op("Gather", [seq, at], axis=1) for seq in (g_in, t_in, f_in))
        if h is not None:
            rec_g, rec_t, rec_f = g.op("Split", [matmul(h, w_h), sizes], axis=1, outputs=3)
            g_t, t_t, f_t = (g.op("Add", pair) for pair in ((g_t, rec_g), (t_t, rec_t),
                                                             (f_t, rec_f)))  # fmt: skip
        gates = g.op("Sigmoid", [g_t])
        if model.gate_norm == "batchnorm":
            gates = g.op("Add", [g.op("Mul", [gates, g.const("bn_t_scale", bn_scale[t])]),
                                 g.const("bn_t_shift", bn_shift[t])])  # fmt: skip
        f, i_t, o, i_f = g.op("Split", [gates], axis=1, outputs=4)
        new = g.op("Add", [g.op("Mul", [i_t, g.op("Tanh", [t_t])]),
                           g.op("Mul", [i_f, g.op("Tanh", [f_t])])])  # fmt: skip
        c = new if c is None else g.op("Add", [g.op("Mul", [f, c]), new])
        h = g.op("Mul", [o, g.op("Tanh", [c])])
        outs.append(g.unsqueeze(g.batch_norm(params["bn_out"], stats["bn_out"], h, nn.BN_EPS),
                                1))  # fmt: skip
    stacked = g.op("Concat", outs, axis=1)  # [B, T, H]
    return g.op("ReduceMean", [stacked], axes=[1], keepdims=0) if last else stacked


def ds_lstm(model, variables: dict, mean=None, std=None, name: str | None = None):
    """The ONNX graph of a DS-LSTM member (`reslstm_jax.models.ds_lstm`) in evaluation mode.

    Inputs: `a` [batch, frames_a, n_mels_a] and `b` [batch, frames_b, n_mels_b] log-mel
    spectrograms (fixed sizes, as the features write them), `mfcc` [batch, frames, 39] with
    `lengths` (for branches="full"; "ds" reads `lengths` for nothing). The model reads raw
    features (its recipe does not normalise: `mean`, `std` are ignored). The DS-LSTM
    recurrence is unrolled over its fixed `steps` (27 by default); the MFCC LSTMs are ONNX's
    LSTM with `sequence_lens`. Output: the fused logits."""

    params, stats = variables["params"], variables["batch_stats"]
    g = _Graph()
    seq_a = _ds_cnn(g, params["cnn_a"], stats["cnn_a"], "a")
    seq_b = _ds_cnn(g, params["cnn_b"], stats["cnn_b"], "b")
    steps = model.steps

    def every_other(seq: str, start: int) -> str:  # seq[:, start : start + 2 steps : 2]
        ints = [g.const(k, np.array([v], np.int64))
                for k, v in (("start", start), ("end", start + 2 * steps), ("axis", 1),
                             ("step", 2))]  # fmt: skip
        return g.op("Slice", [seq, *ints])

    # alignment: x_t = mean(A[2t : 2t + 3]), B truncated to the aligned steps
    x = g.op("Add", [g.op("Add", [every_other(seq_a, 0), every_other(seq_a, 1)]),
                     every_other(seq_a, 2)])  # fmt: skip
    x = g.op("Div", [x, g.const("three", np.float32(3.0))])
    first = [g.const(k, np.array([v], np.int64)) for k, v in (("start", 0), ("end", steps),
                                                              ("axis", 1))]  # fmt: skip
    y = g.op("Slice", [seq_b, *first])
    for i in range(model.ds_layers):
        x = _ds_layer(g, model, params["ds"][f"layer{i}"], stats["ds"][f"layer{i}"], x, y,
                      model.x_size if i == 0 else model.hidden_size,
                      last=i == model.ds_layers - 1)  # fmt: skip
    logits = g.dense(params["head_ds"], x)
    inputs = {"a": ["batch", model.frames_a, model.n_mels_a],
              "b": ["batch", model.frames_b, model.n_mels_b]}  # fmt: skip
    if model.branches == "full":
        inputs["mfcc"] = ["batch", "frames", model.mfcc_size]
        valid = g.valid_frames("mfcc")
        h = g.op("Transpose", [g.zero_padding("mfcc", valid)], perm=[1, 0, 2])  # [T, B, D]
        for i in range(model.lstm_layers):
            h = g.lstm(params["lstm"][f"layer{i}"], h, "lengths", model.hidden_size)
        # the mean over the valid frames (the runtime's outputs past a length are not relied on)
        h = g.zero_padding(g.op("Transpose", [h], perm=[1, 0, 2]), valid)
        frames = g.op("Max", [g.op("Cast", ["lengths"], to=TensorProto_FLOAT),
                              g.const("one", np.float32(1.0))])  # fmt: skip
        pooled = g.op("Div", [g.op("ReduceSum", [h, g.const("axis", np.array([1], np.int64))],
                                   keepdims=0), g.unsqueeze(frames, 1)])  # fmt: skip
        head_lstm = g.dense(params["head_lstm"], pooled)
        p = model.head_weight
        weighted_ds = g.op("Mul", [logits, g.const("p", np.float32(p))])
        weighted_lstm = g.op("Mul", [head_lstm, g.const("q", np.float32(1.0 - p))])
        logits = g.op("Add", [weighted_ds, weighted_lstm])
    return g.model(model, name, {"logits": logits}, inputs=inputs)


# family -> graph builder (`python -m reslstm_jax.export`)
BUILDERS = {"lstm_sa": attention_lstm, "reslstm_sa": attention_lstm,
            "light_sernet": light_sernet, "ds_lstm": ds_lstm}  # fmt: skip
