"""PyTorch ResLSTM-SA training throughput on RAVDESS-shaped data: the speed reference that
`python -m experiments.bench --torch-python PATH` compares the JAX engine with.

What it measures: how fast PyTorch trains the paper's ResLSTM-SA (Krasnoproshin & Vashkevich,
DSPA 2026, arXiv 2606.03359), written as its reference implementation
(https://github.com/Mak-Sim/ResLSTM-SER) writes it, with Adam (lr 1e-3, coupled weight decay
1e-3) on random features shaped like RAVDESS MFCC+chroma sequences: `--utterances` utterances of
[L, 46] with L in 60-110 frames, 8 classes, shuffled every epoch, each batch padded to its own
longest sequence and packed. Utterances per second = `--utterances` / the fastest epoch over all
models and epochs (the best case for torch; the batching and the host-to-device copies are
inside the time, validation is not done). `--models M` trains M fresh models one after another,
as a trial's folds x seeds would run in one torch process.

Model: LSTM1 (46 -> 46) + x, BatchNorm1d(46), LSTM2 (46 -> H), soft attention (one vector,
softmax over the padded frames as the reference does), BatchNorm1d(H), dropout, Linear(H -> 8),
with the reference's initialisation. Its trainable parameter count is checked against the
paper's (h64: 46,772, the count `python -m reslstm_jax.models` prints for the JAX model) before
anything is timed; the script exits 1 if they differ. Training is float32 on both devices (the
reference notebook's fp16 autocast on CUDA is left out: the engine trains in float32).

Run it from the repository root, with the python of a throwaway virtualenv that has only torch
and numpy (torch is never a dependency of this project; nothing of `reslstm_jax` is imported):

    python -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy \\
        --index-url https://download.pytorch.org/whl/cpu
    /tmp/torchvenv/bin/python experiments/torch_reference.py [--hidden 64] [--batch 32]
        [--utterances 1020] [--epochs 3] [--device cpu|cuda] [--models 1]

(The CPU wheel index avoids several GB of CUDA wheels; use PyPI's default wheel for
`--device cuda`.) `python -m experiments.bench --torch-python /tmp/torchvenv/bin/python` runs
it with `--hidden --batch --epochs 3` and reads its last line. One model's epoch takes 1.8-2.3 s
on a 2-core CPU (docs/performance.md), and many times that when other processes share the cores.

Output (the contract `experiments.bench` parses): one JSON line on stdout, with the keys
impl ("torch-<version>"), threads (torch's intra-op threads), device, models, total_s (all
timed epochs), hidden, batch, utterances, epoch_s (the fastest epoch) and utt_per_s; the
parameter count goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

N_FEATURES, N_CLASSES = 46, 8
MIN_FRAMES, MAX_FRAMES = 60, 110  # the utterance lengths, inclusive
LEARNING_RATE, WEIGHT_DECAY, DROPOUT = 1e-3, 1e-3, 0.2  # as experiments/bench.py's engine runs


def paper_param_count(hidden: int, features: int = N_FEATURES, classes: int = N_CLASSES) -> int:
    """Trainable parameters of the paper's ResLSTM-SA with hidden size `hidden`, from the layer
    shapes (BatchNorm running statistics are buffers, not counted). h32 / h64 / h128:
    27,988 / 46,772 / 108,916, the counts the paper and its results files print."""

    def lstm(n_in: int, n_out: int) -> int:
        # torch keeps two bias vectors per LSTM (bias_ih and bias_hh): 8 x n_out, not 4 x n_out
        return 4 * n_out * (n_in + n_out) + 8 * n_out

    residual = lstm(features, features) + 2 * features  # LSTM1 and BatchNorm1d(D)'s gamma, beta
    head = hidden + 2 * hidden + classes * hidden + classes  # u, BatchNorm1d(H), Linear(H -> C)
    return residual + lstm(features, hidden) + head


def build_model(hidden: int = 64, dropout: float = DROPOUT):
    """The paper's ResLSTM-SA as a `torch.nn.Module`, in training mode, on the CPU.

    forward(x, lengths) -> logits: x [B, T_b, 46] float32, zero-padded to the batch's longest
    sequence T_b; lengths [B] int64 on the CPU (pack_padded_sequence reads them on the host);
    logits [B, 8].
    """
    # torch is imported here, not at the top, so the module (its --help, the parameter formula)
    # imports in the project's environment, which has no torch
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def packed(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, T_b, D_in] -> [B, T_b, D_out]: the LSTM over each row's own length only; its
        outputs on padded frames are exactly 0 (what the residual and the attention see)."""
        seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = lstm(seq)
        return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]

    class ResLSTMSA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm1 = nn.LSTM(N_FEATURES, N_FEATURES, batch_first=True)
            self.bn_residual = nn.BatchNorm1d(N_FEATURES)
            self.lstm2 = nn.LSTM(N_FEATURES, hidden, batch_first=True)
            self.attention_vector = nn.Parameter(torch.empty(hidden, 1))
            self.bn = nn.BatchNorm1d(hidden)
            self.drop = nn.Dropout(dropout)
            self.fc = nn.Linear(hidden, N_CLASSES)
            # the reference's initialisation (torch's defaults differ; the timing would not,
            # but the model should be the paper's one)
            for lstm, size in ((self.lstm1, N_FEATURES), (self.lstm2, hidden)):
                nn.init.xavier_normal_(lstm.weight_ih_l0)
                nn.init.orthogonal_(lstm.weight_hh_l0)
                with torch.no_grad():
                    for bias in (lstm.bias_ih_l0, lstm.bias_hh_l0):
                        bias.zero_()
                        bias[size : 2 * size] = 1.0  # forget gate (rows i, f, g, o): 1 in both
            nn.init.xavier_normal_(self.attention_vector)
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            r = packed(self.lstm1, x, lengths) + x  # [B, T_b, 46], 0 on padded frames
            # BatchNorm1d normalises dim 1: features go there ([B, 46, T_b]), and the padded
            # frames count in the statistics, as in the reference
            r = self.bn_residual(r.transpose(1, 2)).transpose(1, 2)
            h = packed(self.lstm2, r, lengths)  # [B, T_b, H]
            # unmasked softmax over the frames, as in the reference: a padded frame scores 0
            weights = torch.softmax(h @ self.attention_vector, dim=1)  # [B, T_b, 1]
            context = (h * weights).sum(1)  # [B, H]
            return self.fc(self.drop(self.bn(context)))  # [B, 8]

    return ResLSTMSA()


def trainable_params(model) -> int:
    """Number of trainable scalars of a torch module (buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python experiments/torch_reference.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hidden", type=int, default=64, help="LSTM2's hidden size H (default 64)")
    p.add_argument("--batch", type=int, default=32, help="utterances per batch (default 32)")
    p.add_argument("--utterances", type=int, default=1020,
                   help="training set size, one RAVDESS fold's (default 1020)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per model (default 3)")
    p.add_argument("--device", default="cpu",
                   help="a torch device: cpu, or cuda (cuda:N) for torch's cuDNN LSTM on a GPU "
                   "(default cpu)")  # fmt: skip
    p.add_argument("--models", type=int, default=1,
                   help="train this many models one after another, as a trial's folds x seeds "
                   "(default 1)")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import numpy as np
        import torch
        from torch import nn
        from torch.nn.utils.rnn import pad_sequence
    except ImportError as missing:
        sys.exit(f"{missing}: run this with the python of a venv that has torch and numpy "
                 "(see --help)")  # fmt: skip
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch sees no CUDA device (a CPU-only wheel?)")

    expected = paper_param_count(args.hidden)
    count = trainable_params(build_model(args.hidden))
    if count != expected:
        sys.exit(f"ResLSTM-SA h{args.hidden}: {count:,} trainable parameters, the paper's "
                 f"model has {expected:,}")  # fmt: skip
    print(f"ResLSTM-SA h{args.hidden}: {count:,} trainable parameters (the paper's count)",
          file=sys.stderr)  # fmt: skip

    def sync() -> None:
        # CUDA kernels run asynchronously: wait for them before reading the clock
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lengths = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, size=args.utterances)
    # the utterances stay unpadded on the host; every batch is padded to its own longest and
    # copied to the device inside the timed loop, as a torch DataLoader pipeline would do
    xs = [torch.randn(int(n), N_FEATURES) for n in lengths]
    labels = torch.from_numpy(rng.integers(0, N_CLASSES, size=args.utterances)).to(device)
    loss_fn = nn.CrossEntropyLoss()
    epoch_seconds = []
    for _ in range(args.models):
        model = build_model(args.hidden).to(device)
        # coupled L2 (torch's Adam weight_decay), as the paper trains; not AdamW
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        for _ in range(args.epochs):
            order = rng.permutation(args.utterances)
            sync()
            start = time.perf_counter()
            for i in range(0, args.utterances, args.batch):
                rows = order[i : i + args.batch]
                x = pad_sequence([xs[j] for j in rows], batch_first=True).to(device)
                batch_lengths = torch.tensor([len(xs[j]) for j in rows])  # on the host
                opt.zero_grad()
                loss = loss_fn(model(x, batch_lengths), labels[torch.from_numpy(rows)])
                loss.backward()
                opt.step()
            sync()
            epoch_seconds.append(time.perf_counter() - start)

    best = min(epoch_seconds)
    print(json.dumps({
        "impl": f"torch-{torch.__version__}", "threads": torch.get_num_threads(),
        "device": args.device, "models": args.models, "total_s": round(sum(epoch_seconds), 3),
        "hidden": args.hidden, "batch": args.batch, "utterances": args.utterances,
        "epoch_s": round(best, 3), "utt_per_s": round(args.utterances / best, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
