"""Export of trained models to ONNX (the optional `export` extra: onnx, onnxruntime).

`graphs`: the ONNX graph of one model member, built with `onnx.helper` and ONNX's own `LSTM`
operator (docs/export.md).
"""
