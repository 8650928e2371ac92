"""`python -m experiments.run EXPERIMENT [flags]`: run an experiment file of your own, or a
shipped one by name (experiments/setups/), with the flags every experiment takes.

```bash
python -m experiments.run ~/lab/my_setup.yaml --data-dir ~/data/RAVDESS --out runs/mine
python -m experiments.run ravdess_reslstm_sa --budget quick   # a shipped one, by name
```
The file's form: `experiments/setup_files.py` and docs/reports.md. It is checked before any
data is read; what it trains, writes and resumes is what the shipped experiments do
(`experiments.common`), and the output folder's config.yaml records the file's path.
"""

from __future__ import annotations

import sys

from experiments import common, setup_files


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        if argv[:1] in (["-h"], ["--help"]):
            print(__doc__.strip())
            print(f"\nshipped experiments: {', '.join(setup_files.names())}")
            return 0
        print("error: name an experiment first: python -m experiments.run FILE.yaml [flags] "
              f"(shipped: {', '.join(setup_files.names())})", file=sys.stderr)  # fmt: skip
        return 2
    try:
        exp = setup_files.load(argv[0])
    except setup_files.SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return common.main(exp, argv[1:], command=["python", "-m", "experiments.run", *argv])


if __name__ == "__main__":
    from reslstm_jax import interrupts

    sys.exit(interrupts.run(main))
