"""Experiments end to end on a tiny RAVDESS-named tree: runs, report, plots, resume, misuse."""

from __future__ import annotations

import json

import pytest

from experiments import common, ravdess_reslstm_sa, setup_files
from experiments import run as run_cli

# A user's experiment file, from a folder of theirs: two configurations (one with the CLI's
# name of a setting, `lr`), one setup, a pair. ResLSTM-SA h8 at batch 8 is the train CLI's
# shape of tests/conftest.py (`train_command`): its programs come from the compilation cache.
USER_EXPERIMENT = """\
description: two attention LSTMs on actor folds
configs:
  reslstm_sa_h8: {model: reslstm_sa, hidden_size: 8, batch_size: 8, weight_decay: 1.6e-3}
  lstm_sa_h8: {model: lstm_sa, hidden_size: 8, batch_size: 8, weight_decay: 7.0e-5, lr: 1e-3}
setups:
  ravdess:
    fair: {protocol: ravdess_paper, note: per-fold normalisation}
budgets:
  full: {seeds: 2, epochs: 2}
pairs: [[reslstm_sa_h8, lstm_sa_h8]]
"""


def test_a_users_experiment_file_trains_reports_and_resumes(
    tone_corpus, feature_cache, tmp_path, capsys
):
    import yaml

    path = tmp_path / "lab" / "mine.yaml"
    path.parent.mkdir()
    path.write_text(USER_EXPERIMENT)
    out = tmp_path / "exp"
    argv = [str(path), "--data-dir", str(tone_corpus), "--out", str(out),
            "--cache-dir", str(feature_cache), "--feature-workers", "1", "--no-progress",
            "--no-latency"]  # fmt: skip
    assert run_cli.main(argv) == 0
    report = (out / "report.md").read_text()
    assert "| lstm_sa h8 " in report and "| reslstm_sa h8 " in report
    assert "protocol ravdess_paper" in report and "per-fold (training speakers)" in report
    assert "[fair] A = reslstm_sa h8, B = lstm_sa h8 (10 matched fold x seed runs)" in report
    # the classical reference row, in the same table, on the same folds
    assert "| egemaps functionals + linear SVM (baseline) " in report
    assert report.count("Table: ") == 1
    assert r"\begin{tabular}" in (out / "report.tex").read_text()
    for config in ("reslstm_sa_h8", "lstm_sa_h8"):
        run = out / "fair" / config
        assert (run / "results.json").is_file() and (run / "inference.json").is_file()
        assert (run / "skipped.csv").read_text() == "path,reason\n"  # every file was used
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert "pareto.png" in pngs and "confusion_reslstm_sa_h8.png" in pngs
    config_text = (out / "config.yaml").read_text()
    assert f"# experiment file: {path}" in config_text
    # each run's own config.yaml trains it alone with the train CLI: the same settings
    from reslstm_jax import configfile, models
    from reslstm_jax.train.__main__ import build_parser, checked_flags

    for config in ("reslstm_sa_h8", "lstm_sa_h8"):
        run = out / "fair" / config
        alone_argv = ["--config", str(run / "config.yaml"), "--out", str(tmp_path / "alone")]
        args = configfile.parse_args(build_parser(), alone_argv)
        alone = checked_flags(args)[0].to_json()
        recorded = json.loads((run / "results.json").read_text())["settings"]
        # the same model (config.yaml names its defaults too: num_att, res_blocks) and the
        # same settings otherwise
        model_of = [models.get(s["model"], **s.pop("model_config")) for s in (alone, recorded)]
        assert model_of[0] == model_of[1] and alone == recorded
        assert args.data_dir == str(tone_corpus) and args.protocol == "ravdess_paper"
    assert yaml.safe_load(config_text)["budget"] == "full"  # real data: the file's full budget
    capsys.readouterr()
    assert run_cli.main(argv) == 0  # a rerun keeps finished configurations
    assert capsys.readouterr().out.count("done earlier, kept") == 3  # and the baseline


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--configs", "resnet"], "--configs: unknown resnet"),
        (["--setups", "nope"], "--setups: unknown nope"),
        (["--epochs", "0"], "--epochs: must be an integer in [1, 2147483647], got 0"),
        (["--data-dir", "/nonexistent/ravdess"], "no such directory"),
        (["--out", "/dev/null/x"], "--out /dev/null/x is under /dev/null, which is a file"),
        (["--folds", "3"], "--folds applies to --protocol speaker_kfold, not ravdess_paper "
         "(setup "),
        (["--label-map", "calm"], "--label-map: 'calm' is not old=new"),
    ],
)  # fmt: skip
def test_ravdess_experiment_misuse_exits_2(extra, message, capsys):
    with pytest.raises(SystemExit) as exc:
        common.main(ravdess_reslstm_sa.EXPERIMENT, extra)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_setup_chooses_its_label_set_and_audio_variants(tmp_path, monkeypatch, capsys):
    """A setup's data choices reach the dataset of each configuration (and nothing trains:
    the dataset is where this test stops)."""
    import dataclasses

    from reslstm_jax import families

    asked = []

    class Stop(Exception):
        pass

    def dataset_for(cache, family, **kwargs):
        asked.append(kwargs)
        raise Stop

    monkeypatch.setattr(families, "dataset_for", dataset_for)
    fair = ravdess_reslstm_sa.EXPERIMENT.setups["ravdess"]["fair"]
    setups = {"ravdess": {"fair": dataclasses.replace(
        fair, label_set="shared4", audio_variants=(("speed", 0.9), ("snr_db", 20.0)))}}  # fmt: skip
    exp = dataclasses.replace(ravdess_reslstm_sa.EXPERIMENT, setups=setups)
    args = common.parser(exp).parse_args(["--out", str(tmp_path), "--configs", "lstm_sa_h32",
                                          "--setups", "fair"])  # fmt: skip
    with pytest.raises(Stop):
        common.run(exp, args, "ravdess", ["lstm_sa_h32"], ["fair"])
    assert asked[0]["label_set"] == "shared4"
    assert asked[0]["audio_variants"] == [{"speed": 0.9}, {"snr_db": 20.0}]


def test_a_named_corpus_without_its_data_is_refused_never_swapped(tmp_path, capsys):
    from experiments import emodb_light_sernet

    for exp, argv in ((ravdess_reslstm_sa.EXPERIMENT, ["--corpus", "ravdess"]),
                      (emodb_light_sernet.EXPERIMENT, ["--corpus", "emodb"])):  # fmt: skip
        assert common.main(exp, [*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "needs --data-dir" in err, err
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("argv", "budget"), [([], "quick"), (["--budget", "full"], "full"),
                                              (["--data-dir", "."], "full")])  # fmt: skip
def test_the_synthetic_fallback_runs_the_quick_budget(argv, budget, capsys):
    """Without data the RAVDESS setups run on the synthetic corpus, whose numbers mean nothing
    for emotion recognition: the quick budget unless asked, not hours of CPU."""
    import yaml

    assert common.main(ravdess_reslstm_sa.EXPERIMENT, [*argv, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["budget"] == budget and printed["corpus"] == "ravdess"


def test_the_shipped_experiments_are_files_of_the_same_form():
    from experiments import emodb_light_sernet, iemocap_ds_lstm

    assert setup_files.names() == ["emodb_light_sernet", "iemocap_ds_lstm", "ravdess_reslstm_sa"]
    for module in (ravdess_reslstm_sa, emodb_light_sernet, iemocap_ds_lstm):
        exp = module.EXPERIMENT
        assert exp.source == str(setup_files.HERE / f"{exp.name}.yaml")
        assert exp.doc == module.__doc__ and {"full", "quick"} <= set(exp.budgets)
    h128 = ravdess_reslstm_sa.EXPERIMENT.configs["lstm_sa_h128"]
    settings = common.settings(h128, ravdess_reslstm_sa.EXPERIMENT.setups["ravdess"]["paper"],
                               ravdess_reslstm_sa.EXPERIMENT.budgets["full"])  # fmt: skip
    assert dict(settings.model_config) == {"hidden_size": 128, "num_att": 2, "paper_compat": True}
    assert (settings.weight_decay, settings.epochs, len(settings.seeds)) == (2.1e-4, 100, 10)
    assert settings.share_init_across_seeds


@pytest.mark.parametrize(
    "edit, message",
    [
        (("setups:", "setup:"), "setup is not a key here (did you mean setups?)"),
        (("protocol: ravdess_paper", "protocol: emodb_loso"),
         "protocol emodb_loso does not split ravdess"),
        (("protocol: ravdess_paper", "protocol: ravdess_papr"),
         "unknown protocol 'ravdess_papr' (did you mean ravdess_paper?)"),
        (("note: per-fold", "nte: per-fold"), "setups.ravdess.fair.nte is not a key here"),
        (("hidden_size: 8, batch_size: 8, weight_decay: 1.6e-3", "hiden_size: 8"), "hiden_size"),
        (("lr: 1e-3", "lr: -1"), "learning rate must be > 0"),
        (("full: {seeds: 2", "quick: {seeds: 2"), "budgets needs `full`"),
        (("epochs: 2}", "epochs: 0}"), "budgets.full.epochs must be a whole number >= 1"),
        (("[[reslstm_sa_h8, lstm_sa_h8]]", "[[reslstm_sa_h8, gru]]"),
         "pairs: gru is not a configuration"),
        (("  ravdess:", "  ravdes:"), "setups.ravdes: unknown corpus (did you mean ravdess?)"),
    ],
)  # fmt: skip
def test_a_bad_experiment_file_is_one_line_before_any_data(tmp_path, capsys, edit, message):
    assert edit[0] in USER_EXPERIMENT  # a stale edit would run a valid file
    path = tmp_path / "bad.yaml"
    path.write_text(USER_EXPERIMENT.replace(*edit))
    assert run_cli.main([str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err, err
    assert not (tmp_path / "o").exists()


def test_an_unknown_experiment_name_lists_the_shipped_ones(capsys):
    assert run_cli.main(["ravdess"]) == 2
    assert "unknown experiment 'ravdess'; shipped: emodb_light_sernet" in capsys.readouterr().err
