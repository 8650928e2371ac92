"""The report's tables as text: Markdown, LaTeX (booktabs), CSV, and a paired comparison.

`reslstm_jax.report` builds the tables (`report.Table`: caption, folds, rows, front) and
re-exports its format_* functions; this module only renders them and imports nothing of the
report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reslstm_jax.edge import LATENCY_KEYS, ONNX_KEYS

if TYPE_CHECKING:
    from reslstm_jax.report import Table


def shown_label(r: dict) -> str:
    """The row's label as tables print it: marked when some of its models diverged or
    collapsed (`reslstm_jax.train.results.collapse`)."""
    marks = [f" [{name} {r[key]}/{r['models']}]" for name, key in
             (("DIVERGED", "diverged"), ("COLLAPSED", "collapsed")) if r.get(key)]  # fmt: skip
    return r["label"] + "".join(marks)


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def spread(mean: float, std: float, n: int, pm: str = "+-") -> str:
    """ "mean +- std" over seeds, or "mean (n = 1)" for one seed: a std of one run is no
    spread, and "+- 0.0000" would read as a perfectly stable result."""
    return f"{mean:.4f} (n = 1)" if n == 1 else f"{mean:.4f} {pm} {std:.4f}"


def _has_onnx(t: Table) -> bool:
    """Whether any row of `t` has the ONNX figures (the `export` extra was installed when it
    was trained): the tables show their columns only then."""
    return any(r.get("onnx_kib") is not None for r in t.rows)


def _cells(r: dict, folds: list[str], pm: str, onnx: bool = False) -> list[str]:
    onnx_cells = [_num(r.get("onnx_kib"), 1), _num(r.get("onnx_int8_kib"), 1),
                  _num(r.get("int8_uar")),
                  _num(r.get("ort_model_ms_per_s"), 3),
                  _num(r.get("ort_int8_model_ms_per_s"), 3)] if onnx else []  # fmt: skip
    return [
        f"{r['params']:,}",
        f"{r['fp32_kib']:.1f}",
        f"{r['fp16_kib']:.1f}",
        _num(r.get("model_ms_per_s"), 3),
        _num(r.get("model_rel"), 2),
        *onnx_cells,
        *(_num(r["folds"][f]) for f in folds),
        spread(r["pooled_uar_mean"], r["pooled_uar_std"], r["seeds"], pm),
        _num(r["pooled_uar_max"]),
        f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]",
        _num(r["wa"]),
        _num(r["macro_f1"]),
    ]


def _header(folds: list[str], onnx: bool = False) -> list[str]:
    onnx_header = ["ONNX KiB", "int8 KiB", "int8 UAR", "ort ms / s", "int8 ms / s"] if onnx else []
    return ["configuration", "params", "fp32 KiB", "fp16 KiB", "model ms / s", "x ref",
            *onnx_header,
            *folds, "pooled UAR", "max", "95% CI", "WA", "macro-F1"]  # fmt: skip


ONNX_NOTE = ("ONNX KiB / int8 KiB: the exported graph's file, fp32 and int8 (dynamic "
             "quantisation); int8 UAR: the int8 graphs' pooled test UAR on the same folds, "
             "mean over seeds; ort / int8 ms / s: onnxruntime's model time per second of audio, "
             "fp32 and int8 (batch 1, one thread).")  # fmt: skip


def format_markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append(f"Table: {t.caption}\n")
        onnx = _has_onnx(t)
        header = _header(t.folds, onnx)
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for r in t.rows:
            mark = " *" if r["label"] in t.front else ""
            cells = _cells(r, t.folds, "±", onnx)
            out.append("| " + " | ".join([shown_label(r) + mark, *cells]) + " |")
        out.append("\n\\* Pareto front: no other row has both fewer parameters and a higher "
                   "selection metric (validation UAR or the study objective)."
                   + (f" {ONNX_NOTE}" if onnx else "") + "\n")  # fmt: skip
        out.append(format_pareto_markdown(t))
    return "\n".join(out)


def format_pareto_markdown(t: Table) -> str:
    lines = ["Pareto front (selection metric vs parameters; test UAR shown, not used):", "",
             "| configuration | params | fp16 KiB | selection | pooled test UAR |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in t.rows:
        if r["label"] in t.front:
            lines.append(f"| {shown_label(r)} | {r['params']:,} | {r['fp16_kib']:.1f} | "
                         f"{r['selection']:.4f} | {r['pooled_uar_mean']:.4f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def latex_label(t: Table) -> str:
    """`tab:<corpus>_<protocol>_<hash8>` (from the table's title): a stable \\ref target."""
    from reslstm_jax.plots import slug

    return "tab:" + slug(t.title.split(", ")[0])


def format_latex(tables: list[Table]) -> str:
    """booktabs tables (needs `\\usepackage{booktabs,graphicx}`), one per protocol card.

    Each is a `table*` (in a two-column paper it spans both columns: the fold columns do not
    fit one), shrunk to the text width when wider (10 folds of EMO-DB's LOSO), never enlarged,
    with a `\\label` (`latex_label`) and a caption that says what bold marks."""
    out = []
    for t in tables:
        onnx = _has_onnx(t)
        header = _header(t.folds, onnx)
        caption = (t.caption + " Bold: the Pareto front (no other row has both fewer parameters "
                   "and a higher selection metric).")  # fmt: skip
        caption += f" {ONNX_NOTE}" if onnx else ""
        out += [
            r"\begin{table*}[t]",
            r"\centering",
            r"\scriptsize",
            r"\setlength{\tabcolsep}{3pt}",
            r"\caption{" + latex_escape(caption) + "}",
            r"\label{" + latex_label(t) + "}",
            # inside \resizebox, \width is the table's natural width
            r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
            r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in header) + r" \\",
            r"\midrule",
        ]
        for r in t.rows:
            label = latex_escape(shown_label(r))
            if r["label"] in t.front:
                label = r"\textbf{" + label + "}"
            cells = [latex_escape(c) for c in _cells(r, t.folds, "+-", onnx)]
            cells = [c.replace(r"+-", r"$\pm$") for c in cells]
            out.append(" & ".join([label, *cells]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}}", r"\end{table*}", ""]
    return "\n".join(out)


def _blank(x):
    return "" if x is None else x


def format_csv(tables: list[Table]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    folds = sorted({f for t in tables for f in t.folds}, key=lambda f: (len(f), f))
    writer.writerow(["table", "configuration", "params", "fp32_kib", "fp16_kib",
                     *LATENCY_KEYS, *ONNX_KEYS, *folds, "pooled_uar_mean",
                     "pooled_uar_std_population", "pooled_uar_max", "ci95_low", "ci95_high",
                     "wa", "macro_f1", "selection", "pareto", "caption"])  # fmt: skip
    for i, t in enumerate(tables):
        for r in t.rows:
            writer.writerow([i, shown_label(r), r["params"], f"{r['fp32_kib']:.2f}",
                             f"{r['fp16_kib']:.2f}",
                             *(_blank(r.get(key)) for key in (*LATENCY_KEYS, *ONNX_KEYS)),
                             *(r["folds"].get(f, "") for f in folds), r["pooled_uar_mean"],
                             r["pooled_uar_std"], r["pooled_uar_max"], r["ci95"][0],
                             r["ci95"][1], r["wa"], r["macro_f1"], r["selection"],
                             r["label"] in t.front, t.caption])  # fmt: skip
    return buffer.getvalue()


def format_comparison(result: dict) -> str:
    w, m = result["wilcoxon"], result["mcnemar"]
    per_seed = ", ".join(f"{p:.4g}" for p in m["per_seed_p_values"])
    return "\n".join([
        f"A = {result['a']}, B = {result['b']} ({result['pairs']} matched fold x seed runs)",
        f"  mean fold UAR: A {result['mean_uar_a']:.4f}, B {result['mean_uar_b']:.4f}",
        f"  Wilcoxon signed-rank over fold x seed UARs: W = {w['statistic']:.1f}, "
        f"p = {w['p_value']:.4g} (two-sided, n = {w['n']}, "
        f"median A - B {w['median_difference']:+.4f})",
        f"  McNemar (exact) on pooled predictions, all seeds: only A right {m['only_a_correct']}, "
        f"only B right {m['only_b_correct']}, p = {m['p_value']:.4g}; per seed p: {per_seed}",
    ])  # fmt: skip
