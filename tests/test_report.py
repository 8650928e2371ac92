"""Report tables on a hand-made results set: known means, stds, p-values; formats; the CLI."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from experiments import report as report_cli
from reslstm_jax import metrics, report, report_formats

CLASSES = ["neutral", "angry"]
FOLDS = ["fold0", "fold1"]
LABELS = {"fold0": [0, 0, 1, 1], "fold1": [0, 1, 1, 1]}
IDS = {"fold0": ["a", "b", "c", "d"], "fold1": ["e", "f", "g", "h"]}


def make_results(preds: dict, *, model="lstm_sa", hidden=8, objective="val", norm="fold",
                 trial=None, val=0.5) -> dict:  # fmt: skip
    """Results of seeds x folds from `preds[(seed, fold)]` (lists aligned with LABELS)."""
    seeds = sorted({s for s, _ in preds})
    runs, y_true, y_pred = [], [], []
    for s in seeds:
        y_true.append([np.array(LABELS[f]) for f in FOLDS])
        y_pred.append([np.array(preds[(s, f)]) for f in FOLDS])
        for f in FOLDS:
            runs.append({
                "seed": s, "fold": f, "best_epoch": 0, "best_val_uar": val,
                "train_loss": [1.0, 0.9], "val_uar": [val - 0.1, val],
                "test": metrics.classification(LABELS[f], preds[(s, f)], 2),
                "test_predictions": {"ids": IDS[f], "labels": LABELS[f],
                                     "predictions": list(preds[(s, f)])},
            })  # fmt: skip
    params = {8: 1000, 16: 3000, 32: 9000}[hidden]
    results = {
        "settings": {"seeds": seeds, "epochs": 2, "share_init_across_seeds": False},
        "model": {"name": model, "config": {"hidden_size": hidden}, "trainable_params": params},
        "card": {"corpus": "ravdess", "protocol": "ravdess_paper", "classes": CLASSES,
                 "n_utterances": 8, "n_speakers": 4, "utterance_ids_sha256": "ab" * 32,
                 "folds": [{"name": f} for f in FOLDS], "features": {"name": "mfcc_chroma"},
                 "normalisation": norm, "normalisation_leaky": norm == "global"},
        "objective": objective,
        "runs": runs,
        "aggregate": metrics.aggregate(FOLDS, seeds, y_true, y_pred, 2),
    }  # fmt: skip
    if trial is not None:
        results["trial"] = {"number": trial, "state": "complete", "values": [val]}
    return results


PERFECT = {(s, f): LABELS[f] for s in (0, 1) for f in FOLDS}
# seed 0 perfect; seed 1: fold0 gets one angry wrong (UAR 0.75), fold1 one angry wrong
MIXED = {**PERFECT, (1, "fold0"): [0, 0, 1, 0], (1, "fold1"): [0, 1, 1, 0]}


@pytest.fixture
def results_dir(tmp_path):
    for name, preds, hidden, val in (("small", MIXED, 8, 0.6), ("big", PERFECT, 16, 0.7),
                                     ("huge", PERFECT, 32, 0.65)):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(
            json.dumps(make_results(preds, hidden=hidden, val=val))
        )
    return tmp_path


def test_row_numbers_are_the_hand_computed_ones():
    config = report.Config(make_results(MIXED), "x/results.json")
    row = report.row(report.label_configs([config])[0], ci_resamples=200)
    # fold0: seed UARs 1.0 and 0.75 -> 0.875; fold1: 1.0 and (1 + 2/3)/2 = 0.8333 -> 0.9167.
    # approx (rel 1e-6): the same fractions in float64, summed in the report's order.
    assert row["folds"]["fold0"] == pytest.approx(0.875)
    assert row["folds"]["fold1"] == pytest.approx((1 + 5 / 6) / 2)
    # pooled seed 1: labels 0,0,1,1,0,1,1,1 predictions 0,0,1,0,0,1,1,0: recalls 1 and 3/5
    pooled = [1.0, (1 + 3 / 5) / 2]
    assert row["pooled_uar_mean"] == pytest.approx(np.mean(pooled))
    assert row["pooled_uar_std"] == pytest.approx(np.std(pooled))
    assert row["pooled_uar_max"] == 1.0  # seed 0's recalls are all n / n: exactly 1
    assert row["wa"] == pytest.approx((1 + 6 / 8) / 2)
    assert row["ci95"][0] <= row["pooled_uar_mean"] <= row["ci95"][1] <= 1.0
    # KiB: 1000 * bytes / 1024, binary fractions, exact whatever the order; approx as above
    assert row["params"] == 1000 and row["fp32_kib"] == pytest.approx(1000 * 4 / 1024)
    assert row["fp16_kib"] == pytest.approx(1000 * 2 / 1024)


def test_compare_gives_the_paired_p_values():
    a = report.Config(make_results(PERFECT), "a", label="A")
    b = report.Config(make_results(MIXED), "b", label="B")
    result = report.compare(a, b)
    # fold x seed UARs: A = 1,1,1,1; B = 1,1,0.75,0.8333: two non-zero differences, both
    # positive -> exact p = 2 / 2^2 = 0.5 (zero differences dropped, scipy's default). The
    # p-values are binary fractions; approx's rel 1e-6 leaves scipy its own float64 arithmetic.
    assert result["wilcoxon"]["p_value"] == pytest.approx(0.5)
    # McNemar over both seeds: only A right on 2 utterances, never only B -> p = 2/4
    assert result["mcnemar"]["only_a_correct"] == 2 and result["mcnemar"]["only_b_correct"] == 0
    assert result["mcnemar"]["p_value"] == pytest.approx(0.5)
    # seed 0: the models never disagree, p set to 1.0
    assert result["mcnemar"]["per_seed_p_values"] == [1.0, pytest.approx(0.5)]
    other = make_results(PERFECT)
    other["card"]["utterance_ids_sha256"] = "cd" * 32
    with pytest.raises(report.ReportError, match="different corpus, protocol or utterances"):
        report.compare(a, report.Config(other, "c", label="C"))


def test_tables_are_split_by_protocol_card_and_the_caption_states_it():
    configs = report.label_configs([
        report.Config(make_results(PERFECT), "a/results.json"),
        report.Config(make_results(MIXED, norm="global", hidden=16), "b/results.json"),
    ])  # fmt: skip
    tables = report.build_tables(configs, ci_resamples=200)
    assert len(tables) == 2
    fair, leaky = tables
    assert "ravdess_paper" in fair.caption and "abababababababab" in fair.caption
    assert "per-fold" in fair.caption and "LEAKY" not in fair.caption
    assert "LEAKY" in leaky.caption and "global" in leaky.caption


def test_a_synthetic_run_and_a_real_run_are_two_tables_named_apart():
    """The synthetic corpus (RAVDESS file names) is its own corpus, with its own hash."""
    real = make_results(PERFECT)
    fake = make_results(PERFECT, hidden=16)
    fake["card"].update(corpus="synthetic", utterance_ids_sha256="ef" * 32, source={
        "description": "synthetic speech (RAVDESS layout, eSpeak NG)", "seed": 0,
        "generator_version": 1})  # fmt: skip
    configs = report.label_configs([report.Config(real, "a/results.json"),
                                    report.Config(fake, "b/results.json")])  # fmt: skip
    tables = report.build_tables(configs, ci_resamples=200)
    assert len(tables) == 2
    captions = sorted(t.caption for t in tables)
    assert captions[0].startswith("ravdess, protocol ravdess_paper")
    assert captions[1].startswith(
        "synthetic (synthetic speech (RAVDESS layout, eSpeak NG), seed 0), protocol ravdess_paper"
    )


def test_pareto_front_uses_the_selection_metric_not_test():
    rows = [
        {"label": "a", "params": 10, "selection": 0.5},
        {"label": "b", "params": 20, "selection": 0.7},
        {"label": "c", "params": 30, "selection": 0.6},  # bigger and worse than b
        {"label": "d", "params": 40, "selection": 0.8},
    ]
    assert report.pareto_front(rows) == ["a", "b", "d"]
    # against another cost (rows without it are never on that front)
    for r, kib in zip(rows, (9.0, 4.0, 2.0, None), strict=True):
        r["onnx_kib"] = kib
    assert report.pareto_front(rows, "onnx_kib") == ["b", "c"]


@pytest.mark.parametrize(
    "costs,scores,front",
    [([1, 2, 3], [0.5, 0.6, 0.7], [True, True, True]),
     ([1, 2, 3], [0.7, 0.6, 0.5], [True, False, False]),
     ([1, 1, 2], [0.5, 0.5, 0.9], [True, True, True]),  # ties dominate nothing
     ([2, 1], [0.5, 0.5], [False, True])],
)  # fmt: skip
def test_front_mask(costs, scores, front):
    assert report.front_mask(costs, scores) == front


def test_onnx_figures_get_their_columns_and_can_be_the_pareto_axis(results_dir, tmp_path, capsys):
    """Runs trained with the export extra have the ONNX figures in `edge`: the tables show
    them (md, LaTeX, CSV) and `--pareto-x` puts them on the Pareto plot; without them, it says
    so."""
    assert report_cli.main([str(results_dir), "--pareto-x", "onnx_kib", "--plots",
                            str(tmp_path / "p"), "--ci-resamples", "200"]) == 2  # fmt: skip
    assert "--pareto-x onnx_kib: no configuration has it" in capsys.readouterr().err
    for name, kib in (("small", 5.0), ("big", 9.5)):
        path = results_dir / name / "results.json"
        results = json.loads(path.read_text())
        results["edge"] = {"onnx_kib": kib, "onnx_int8_kib": kib / 2, "ort_ms_per_s": 7.25,
                           "int8_uar": 0.5,
                           "ort_model_ms_per_s": kib / 10, "ort_int8_model_ms_per_s": kib / 20,
                           "model_ms_per_s": kib / 8, "model_ms_q1": kib / 9,
                           "model_ms_q3": kib / 7, "model_rel": kib / 4,
                           "features_ms_per_s": 7.0, "features_ms_q1": 6.9,
                           "features_ms_q3": 7.2, "latency_features": "mfcc_chroma at 48000 Hz",
                           "latency_cpu": "Some CPU", "latency_threads": 1,
                           "latency_reference": "reslstm_sa h64"}  # fmt: skip
        path.write_text(json.dumps(results))
    assert report_cli.main([str(results_dir), "--ci-resamples", "200"]) == 0
    out = capsys.readouterr().out
    # the model's own latency and its ratio to the reference; the features once, in the caption
    assert ("| model ms / s | x ref | ONNX KiB | int8 KiB | int8 UAR | ort ms / s | int8 ms / s |"
            in out)  # fmt: skip
    assert "| 1.188 | 2.38 | 9.5 | 4.8 | 0.5000 | 0.950 | 0.475 |" in out
    assert "| - | - | - | - | - | - | - |" in out  # h32 has none
    assert ("features per second of audio, once per feature set: mfcc_chroma at 48000 Hz "
            "7.00 ms (IQR 6.90-7.20); measured on Some CPU (1 thread).") in out  # fmt: skip
    assert report_cli.main([str(results_dir), "--format", "latex", "--ci-resamples", "200"]) == 0
    assert "x ref & ONNX KiB & int8 KiB & int8 UAR & ort ms / s" in capsys.readouterr().out
    assert report_cli.main([str(results_dir), "--format", "csv", "--ci-resamples", "200"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["onnx_kib"] for r in rows] == ["5.0", "9.5", ""]
    assert [r["model_ms_q3"] for r in rows][:2] == [str(5.0 / 7), str(9.5 / 7)]
    assert report_cli.main([str(results_dir), "--pareto-x", "model_ms_per_s", "--plots",
                            str(tmp_path / "m"), "--ci-resamples", "200"]) == 0  # fmt: skip
    plots = tmp_path / "plots"
    assert report_cli.main([str(results_dir), "--pareto-x", "onnx_kib", "--plots", str(plots),
                            "--ci-resamples", "200"]) == 0  # fmt: skip
    assert (plots / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as exited:  # an axis for a plot that is not asked for
        report_cli.main([str(results_dir), "--pareto-x", "ort_ms_per_s"])
    assert exited.value.code == 2
    assert "--pareto-x sets the axis of the Pareto plot" in capsys.readouterr().err


def _balanced(tex: str) -> None:
    depth = 0
    for i, ch in enumerate(tex):
        if ch in "{}" and i and tex[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, tex[max(0, i - 40) : i + 1]
    assert depth == 0
    begins = re.findall(r"\\begin\{([\w*]+)\}", tex)
    ends = re.findall(r"\\end\{([\w*]+)\}", tex)
    # table*: spans both columns of a two-column paper
    assert begins == ["table*", "tabular"] * (len(begins) // 2) and sorted(begins) == sorted(ends)


def test_latex_is_balanced_escaped_and_compiles_when_latex_is_there(tmp_path):
    configs = report.label_configs([report.Config(make_results(MIXED), "a/results.json")])
    tex = report.format_latex(report.build_tables(configs, ci_resamples=200))
    _balanced(tex)
    assert r"lstm\_sa h8" in tex and r"ravdess\_paper" in tex and r"$\pm$" in tex
    assert r"\label{tab:ravdess_ravdess_paper_abababab}" in tex
    assert "Bold: the Pareto front" in tex and r"\textbf{lstm\_sa h8}" in tex
    (header,) = [line for line in tex.splitlines() if line.startswith("configuration &")]
    assert header.count("&") == len(report_formats._header(FOLDS)) - 1
    for line in tex.splitlines():
        if line.endswith(r"\\") and "&" in line:
            assert line.count("&") == header.count("&")
    latex = shutil.which("pdflatex")
    if latex is None:
        pytest.skip("pdflatex is not installed; balance and column counts were checked")
    # a two-column paper, as most SER venues use
    doc = ("\\documentclass[twocolumn]{article}\\usepackage{booktabs,graphicx}"
           "\\begin{document}\n%s\n\\end{document}\n")  # fmt: skip
    (tmp_path / "t.tex").write_text(doc % tex)
    proc = subprocess.run([latex, "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "Overfull" not in (tmp_path / "t.log").read_text()  # it fits the page


def test_cli_markdown_csv_compare_and_plots(results_dir, capsys, tmp_path):
    assert report_cli.main([str(results_dir), "--ci-resamples", "200", "--compare",
                            "lstm_sa h16", "lstm_sa h8"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| lstm_sa h8 " in out and "0.8750" in out and "fold0" in out
    assert "Table: ravdess, protocol ravdess_paper" in out
    assert "Wilcoxon signed-rank" in out and "p = 0.5" in out
    # the front by validation UAR: h8 (0.6) and h16 (0.7); h32 (0.65) is bigger and worse
    assert "| lstm_sa h16 * |" in out and "| lstm_sa h32 |" in out

    target = tmp_path / "t.csv"
    assert report_cli.main([str(results_dir), "--format", "csv", "--out", str(target),
                            "--ci-resamples", "200"]) == 0  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["configuration"] for r in rows] == ["lstm_sa h8", "lstm_sa h16", "lstm_sa h32"]
    assert float(rows[0]["fold0"]) == pytest.approx(0.875)  # a float64 mean, written as repr
    assert [r["pareto"] for r in rows] == ["True", "True", "False"]

    plots = tmp_path / "plots"
    assert report_cli.main([str(results_dir / "small"), "--plots", str(plots),
                            "--ci-resamples", "200"]) == 0  # fmt: skip
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["confusion_lstm_sa_h8.png", "curves_lstm_sa_h8.png", "pareto.png"]
    assert all((plots / n).read_bytes()[:4] == b"\x89PNG" for n in names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE"], "nope: no such file or directory"),
        (["EMPTY"], "no results.json or trials/*.json below it"),
        (["BAD"], "not a training results file"),
        (["OK", "--compare", "lstm_sa", "zzz"], "matches several"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(results_dir, tmp_path, capsys, args, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "BAD.json").write_text("{}")
    paths = {"NOPE": tmp_path / "nope", "EMPTY": tmp_path / "EMPTY", "BAD": tmp_path / "BAD.json",
             "OK": results_dir}  # fmt: skip
    argv = [str(paths.get(a, a)) for a in args] + ["--ci-resamples", "200"]
    assert report_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_configuration_with_diverged_models_is_marked_and_never_on_the_front():
    bad = make_results(PERFECT, hidden=16, val=0.9)
    bad["diverged"] = [{"seed": 0, "fold": "fold0", "epoch": 1}]
    configs = report.label_configs([report.Config(make_results(MIXED), "a/results.json"),
                                    report.Config(bad, "b/results.json")])  # fmt: skip
    (table,) = report.build_tables(configs, ci_resamples=200)
    assert table.front == ["lstm_sa h8"]  # the diverged h16 would dominate it otherwise
    text = report.format_markdown([table]) + report.format_csv([table])
    assert "| lstm_sa h16 [DIVERGED 1/4] |" in text and "lstm_sa h16 [DIVERGED 1/4]," in text
    assert r"lstm\_sa h16 [DIVERGED 1/4]" in report.format_latex([table])


def test_a_configuration_with_collapsed_models_is_marked_in_every_format():
    """A collapsed model (one class predicted, or chance: `train.results.collapse`) stays a
    measured configuration, so it stays on the front, marked so its UAR is not read as
    learning."""
    bad = make_results(MIXED, hidden=16, val=0.9)
    bad["collapsed"] = [{"seed": 0, "fold": "fold0", "why": "one class"}]
    configs = report.label_configs([report.Config(make_results(MIXED), "a/results.json"),
                                    report.Config(bad, "b/results.json")])  # fmt: skip
    (table,) = report.build_tables(configs, ci_resamples=200)
    text = report.format_markdown([table]) + report.format_csv([table])
    assert table.front == ["lstm_sa h8", "lstm_sa h16"]
    assert "| lstm_sa h16 [COLLAPSED 1/4] * |" in text  # the table, and the front's table:
    assert "| lstm_sa h16 [COLLAPSED 1/4] | 3,000 |" in text
    assert "lstm_sa h16 [COLLAPSED 1/4]," in text and "lstm_sa h8 [" not in text
    assert r"lstm\_sa h16 [COLLAPSED 1/4]" in report.format_latex([table])


def test_one_seed_says_n_1_instead_of_a_zero_spread():
    one_seed = {k: v for k, v in MIXED.items() if k[0] == 0}
    configs = report.label_configs([report.Config(make_results(one_seed), "a/results.json")])
    tables = report.build_tables(configs, ci_resamples=200)
    for text in (report.format_markdown(tables), report.format_latex(tables)):
        assert "1.0000 (n = 1)" in text and "0.0000" not in text.split("(n = 1)")[1][:20]
        assert "$\\pm$ 0.0000" not in text and "± 0.0000" not in text
    assert "± " in report.format_markdown(
        report.build_tables(report.label_configs([report.Config(make_results(MIXED), "b")]),
                            ci_resamples=200))  # fmt: skip


def test_figures_in_vector_formats_with_titles_naming_model_and_split(tmp_path):
    import matplotlib

    from reslstm_jax import plots

    configs = report.label_configs([report.Config(make_results(MIXED), "a/results.json")])
    tables = report.build_tables(configs, ci_resamples=200)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays searchable
        written = plots.for_configs(tmp_path, tables, configs, fmt="svg")
        attention = plots.attention(tmp_path / "att.svg", np.zeros((50, 8)), np.full(50, 0.02),
                                    title="clip", seconds_per_frame=2048 / 48000)  # fmt: skip
    assert sorted(p.name for p in written) == ["confusion_lstm_sa_h8.svg", "curves_lstm_sa_h8.svg",
                                               "pareto.svg"]  # fmt: skip
    confusion = (tmp_path / "confusion_lstm_sa_h8.svg").read_text()
    assert "lstm_sa h8: test, pooled out-of-fold" in confusion
    assert "lstm_sa h8: validation UAR per fold" in (tmp_path / "curves_lstm_sa_h8.svg").read_text()
    svg = attention.read_text()
    assert "time (s)" in svg and ">frame<" not in svg
    pdf = plots.for_configs(tmp_path / "pdf", tables, configs, fmt="pdf")
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdf)
    with pytest.raises(ValueError, match="plot format 'jpg'"):
        plots.for_configs(tmp_path, tables, configs, fmt="jpg")


def test_labels_name_what_changes_the_model():
    results = make_results(PERFECT)
    assert report.base_label(results) == "lstm_sa h8"
    results["settings"]["loss"] = "focal"
    results["model"]["config"].update(paper_compat=True)
    assert report.base_label(results) == "lstm_sa h8, paper-compat, focal loss"
    results["model"] = {"name": "ds_lstm", "config": {"hidden_size": 200, "branches": "ds"}}
    assert report.base_label(results) == "ds_lstm h200, DS branch only, focal loss"


def test_a_study_that_does_not_exist_is_one_line_and_nothing_is_created(tmp_path, capsys):
    """A reader never creates storage (a typo in --study used to leave an empty journal)."""
    assert report_cli.main(["--study", "typo", "--sweep-out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: no study 'typo': no journal file {tmp_path / 'runs' / 'typo'}"
                   "/optuna.journal (check --study, and --sweep-out: the --out of its "
                   "sweep)")  # fmt: skip
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag", ["--out", "--plots"])
def test_an_output_that_cannot_be_written_is_refused_before_any_table(
    results_dir, tmp_path, capsys, monkeypatch, flag
):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "table.md" if flag == "--out" else blocker
    monkeypatch.setattr(report, "build_tables", lambda *a, **k: pytest.fail("tables built"))
    assert report_cli.main([str(results_dir), flag, str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag} {target}") and len(err.splitlines()) == 1
