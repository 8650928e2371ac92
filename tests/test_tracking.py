"""W&B tracking: offline runs written by `reslstm_jax.tracking` and read back from disk.

No network: W&B is pointed at a closed loopback port (`WANDB_BASE_URL=http://127.0.0.1:9`),
credentials are cleared, and every run is offline, disabled, or refused before it starts.
"""

from __future__ import annotations

import sys

import pytest
from wandb_reader import CorruptRun, read_records, read_run, read_table

from reslstm_jax import tracking

SECRET = "TOPSECRET-pw"


@pytest.fixture(autouse=True)
def wandb_env(monkeypatch, tmp_path):
    """Quiet, offline-safe W&B environment with no credentials from the user's machine."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    # a real ~/.netrc or ~/.config/wandb must not log the tests in
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def one_run(directory, job_type):
    runs = [
        r for r in tracking.offline_runs(directory) if read_run(r)["run"]["job_type"] == job_type
    ]
    assert len(runs) == 1, runs
    return runs[0]


def test_offline_trial_runs_read_back(tmp_path, monkeypatch):
    # a storage password on the command line must not reach the run files
    monkeypatch.setattr(sys, "argv", ["sweep", "--storage", f"postgresql://u:{SECRET}@h/db"])
    tracker = tracking.Tracker("offline", tmp_path / "study", project="proj", study="st")
    config = {"model": "lstm_sa", "hidden_size": 32, "lr": 1e-3, "space": {"name": "paper"}}
    good = tracker.start_trial(3, config)
    bad = tracker.start_trial(4, {"hidden_size": 64})
    assert good.id and bad.id and good.id != bad.id
    summary = {"uar": 0.61, "n_params": 12345, "test": {"uar_pooled": 0.58}, "leaky": False}
    tracker.finish_trial(good, summary, {"val_uar_mean": [0.3, 0.5, 0.45]})
    tracker.fail_trial(bad, f"OperationalError: postgresql://u:{SECRET}@h/db refused")
    tracker.finish_trial(good, {"uar": 0.0})  # a closed run is left alone
    tracker.close()

    runs = {r.name.rsplit("-", 1)[1]: r for r in tracking.offline_runs(tmp_path)}
    assert set(runs) == {good.id, bad.id}
    for run_id, run in runs.items():
        # <directory>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>/run-<id>.wandb
        assert run.parent == tmp_path / "study" / "wandb"
        assert run.name.startswith("offline-run-") and (run / f"run-{run_id}.wandb").is_file()

    logged = read_run(runs[good.id])
    assert logged["run"] == {"id": good.id, "group": "st", "job_type": "trial",
                             "name": "st-trial-3", "project": "proj", "entity": "",
                             "tags": []}  # fmt: skip
    assert {k: logged["config"][k] for k in config} == config
    assert [(h["_step"], h["epoch"], h["val_uar_mean"]) for h in logged["history"]] == [
        (0, 1, 0.3), (1, 2, 0.5), (2, 3, 0.45)
    ]  # fmt: skip
    assert logged["summary"]["uar"] == 0.61 and logged["summary"]["n_params"] == 12345
    assert logged["summary"]["test"] == {"uar_pooled": 0.58}
    assert logged["summary"]["leaky"] is False
    assert logged["exit_code"] == 0

    failed = read_run(runs[bad.id])
    assert failed["run"]["name"] == "st-trial-4" and failed["exit_code"] == 1
    assert failed["summary"]["failed"] == "OperationalError: postgresql://u:***@h/db refused"
    assert failed["history"] == []

    for path in (tmp_path / "study").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_study_run_logs_table_and_scatter(tmp_path):
    tracker = tracking.Tracker("offline", tmp_path, project="proj", study="st")
    rows = [
        {"trial": 0, "model": "lstm", "hidden_size": 16, "n_params": 900, "uar": 0.41},
        {"trial": 1, "model": "lstm_sa", "hidden_size": 32, "n_params": 2500, "uar": 0.55},
    ]
    tracker.log_study(rows, front=[0, 1], metric_x="n_params", metric_y="uar")
    # a third trial with a new column (and None where a model lacks a parameter)
    rows.append({"trial": 2, "model": "reslstm", "hidden_size": None, "n_params": 4000,
                 "uar": 0.52, "res_blocks": 2})  # fmt: skip
    tracker.log_study(rows, front=[0, 1], metric_x="n_params", metric_y="uar")
    with pytest.raises(ValueError, match="no column 'objective'"):
        tracker.log_study(rows, front=[], metric_x="n_params", metric_y="objective")
    tracker.close()
    tracker.close()  # idempotent

    run = one_run(tmp_path, "pareto")
    logged = read_run(run)
    assert logged["run"]["name"] == "st-pareto" and logged["run"]["group"] == "st"
    # its id is the study's: a resumed study continues the same W&B run
    assert logged["run"]["id"] == tracking.study_run_id("st") != tracking.study_run_id("st2")
    assert logged["config"]["metric_x"] == "n_params" and logged["config"]["metric_y"] == "uar"
    assert len(logged["history"]) == 2  # one table version per call
    assert [h["trials"]["nrows"] for h in logged["history"]] == [2, 3]
    ref = logged["summary"]["trials"]  # the latest version
    assert ref["_type"] == "table-file" and ref["nrows"] == 3 and ref["ncols"] == 7
    columns, data = read_table(run, ref)
    assert columns == ["trial", "model", "hidden_size", "n_params", "uar", "res_blocks", "pareto"]
    assert data == [
        [0, "lstm", 16, 900, 0.41, None, True],
        [1, "lstm_sa", 32, 2500, 0.55, None, True],
        [2, "reslstm", None, 4000, 0.52, 2, False],
    ]
    assert logged["summary"]["n_trials"] == 3 and logged["summary"]["front"] == [0, 1]
    # the scatter: a Vega panel on the same table, plotting n_params against uar
    assert logged["summary"]["pareto_plot_table"]["nrows"] == 3
    panel = logged["config"]["_wandb"]["visualize"]["pareto_plot"]["panel_config"]
    assert panel["panelDefId"] == "wandb/scatter/v0"
    assert panel["fieldSettings"] == {"x": "n_params", "y": "uar"}


def test_live_curves_tags_entity_and_interactive_confusion_matrix(tmp_path):
    """Epochs are logged as training goes (a resumed run repeats none), the run carries the
    project, entity and tags it was given, and the confusion matrix is an interactive chart."""
    tracker = tracking.Tracker("offline", tmp_path, project="proj", entity="lab",
                               tags=["ravdess", "h64"])  # fmt: skip
    run = tracker.start_run("h64", {"corpus": "synthetic"})
    tracker.log_epochs(run, [{"epoch": 1, "val_uar_mean": 0.2}, {"epoch": 2, "val_uar_mean": 0.3}])
    tracker.log_epochs(run, [{"epoch": 2, "val_uar_mean": 0.3}, {"epoch": 3, "val_uar_mean": 0.4}])
    confusion = {"y_true": [0, 1, 1], "y_pred": [0, 1, 0], "classes": ["neutral", "angry"]}
    tracker.finish_trial(run, {"val_uar": 0.4, "objective": "val_uar"}, confusion=confusion)
    tracker.close()
    logged = read_run(one_run(tmp_path, "train"))
    assert logged["run"]["name"] == "h64" and logged["run"]["tags"] == ["ravdess", "h64"]
    assert (logged["run"]["project"], logged["run"]["entity"]) == ("proj", "lab")
    curves = [(h["_step"], h["epoch"], h["val_uar_mean"]) for h in logged["history"]
              if "epoch" in h]  # fmt: skip
    assert curves == [(0, 1, 0.2), (1, 2, 0.3), (2, 3, 0.4)]
    chart = logged["summary"]["confusion_matrix_table"]
    assert chart["_type"] == "table-file"
    panel = logged["config"]["_wandb"]["visualize"]["confusion_matrix"]["panel_config"]
    assert panel["panelDefId"] == "wandb/confusion_matrix/v1"


@pytest.mark.parametrize(
    "project,entity,tags,expected",
    [("reslstm-jax", None, ["a", "b"], []),
     ("a/b", None, [], [("project", "a/b", "must not contain /")]),
     ("p", "x:y", ["", "t" * 65], [("entity", "x:y", "must not contain :"),
                                   ("tag", "", "must not be empty"),
                                   ("tag", "t" * 65, "is longer than 64 characters")])],
)  # fmt: skip
def test_names_wandb_would_refuse_are_found_before_any_run(project, entity, tags, expected):
    assert tracking.name_problems(project, entity, tags) == expected


def test_disabled_writes_nothing(tmp_path):
    tracker = tracking.Tracker("disabled", tmp_path / "study", project="proj", study="st")
    run = tracker.start_trial(0, {"hidden_size": 16})
    assert run.id is None and run.name == "st-trial-0"
    tracker.finish_trial(run, {"uar": 0.5}, {"val_uar_mean": [0.5]})
    tracker.fail_trial(tracker.start_trial(1, {}), "boom")
    tracker.log_study([{"trial": 0, "n_params": 1, "uar": 0.5}], front=[0])
    tracker.close()
    assert not (tmp_path / "study").exists()
    assert tracking.offline_runs(tmp_path) == []


def test_bad_mode_names_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="offline, online, disabled"):
        tracking.Tracker("cloud", tmp_path, project="proj", study="st")


def test_silent_unless_the_user_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT")
    tracking.Tracker("offline", tmp_path, project="proj", study="st")
    assert tracking.os.environ["WANDB_SILENT"] == "true"
    monkeypatch.setenv("WANDB_SILENT", "false")
    tracking.Tracker("offline", tmp_path, project="proj", study="st")
    assert tracking.os.environ["WANDB_SILENT"] == "false"


def test_online_without_key_fails_fast(tmp_path, monkeypatch):
    with pytest.raises(tracking.TrackingError) as info:
        tracking.Tracker("online", tmp_path, project="proj", study="st")
    assert str(info.value) == tracking.LOGIN_MESSAGE
    assert isinstance(info.value, ValueError)
    # a malformed key: wandb's reason, never the key itself
    monkeypatch.setenv("WANDB_API_KEY", "shh-SECRETKEY")
    with pytest.raises(tracking.TrackingError, match="API key") as info:
        tracking.Tracker("online", tmp_path, project="proj", study="st")
    assert "SECRETKEY" not in str(info.value) and "\n" not in str(info.value)
    # the same refusal when wandb.init itself finds no key (the pre-check skipped)
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setattr(tracking, "_check_credentials", lambda: None)
    tracker = tracking.Tracker("online", tmp_path, project="proj", study="st")
    with pytest.raises(tracking.TrackingError, match="wandb login"):
        tracker.start_trial(0, {})


def test_close_fails_open_trials(tmp_path):
    with tracking.Tracker("offline", tmp_path, project="proj", study="st") as tracker:
        run = tracker.start_trial(7, {"hidden_size": 16})
    logged = read_run(one_run(tmp_path, "trial"))
    assert logged["run"]["id"] == run.id and logged["exit_code"] == 1
    assert "stopped before the run finished" in logged["summary"]["failed"]


def test_reader_rejects_corrupt_files(tmp_path):
    tracker = tracking.Tracker("offline", tmp_path, project="proj", study="st")
    tracker.finish_trial(tracker.start_trial(0, {"a": 1}), {"uar": 0.5})
    (path,) = one_run(tmp_path, "trial").glob("run-*.wandb")
    assert read_records(path)[0].WhichOneof("record_type") == "header"
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0xFF  # inside the first record
    (tmp_path / "bad.wandb").write_bytes(bytes(raw))
    with pytest.raises(CorruptRun, match="checksum"):
        read_records(tmp_path / "bad.wandb")
    (tmp_path / "nope.wandb").write_bytes(b"PK\x03\x04")
    with pytest.raises(CorruptRun, match="header"):
        read_records(tmp_path / "nope.wandb")
