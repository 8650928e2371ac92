"""Weights & Biases tracking of sweeps and trainings: the only module that imports wandb.

W&B only *records*; the Optuna storage is the record of truth (a trial is told first, then its
W&B run is finished). Runs are **offline by default**: nothing leaves the machine until you
upload them. With `Tracker(mode, directory, project, study, entity=, tags=)` (wandb 0.31):

```
<directory>/wandb/
  offline-run-<YYYYmmdd_HHMMSS>-<id>/     one per trial ("<study>-trial-<n>", job_type "trial")
    run-<id>.wandb                        the whole run: config, history, summary, exit code
    files/  logs/  tmp/                   media (tables, images, charts), wandb's debug logs
  offline-run-<YYYYmmdd_HHMMSS>-<id>/     the study run ("<study>-pareto", job_type "pareto",
                                          id `study_run_id(study)`), one per launch
  offline-run-<YYYYmmdd_HHMMSS>-<id>/     a training's run (job_type "train", `start_run`)
  latest-run  debug-internal.log          links to the newest run (wandb's own)
```
(online runs land beside them as `run-<YYYYmmdd_HHMMSS>-<id>/`). All runs of a study share
the W&B group `<study>`. To upload them later, log in once and sync the run directories:

```bash
wandb login                                         # or export WANDB_API_KEY
wandb sync <directory>/wandb/offline-run-*          # -p/--project, -e/--entity to override
wandb sync --dry-run <directory>/wandb/offline-run-*  # lists what would be uploaded
```
`offline_runs(directory)` lists those directories. Modes: `"offline"` (default everywhere),
`"online"` (needs `wandb login` or `WANDB_API_KEY`; checked before anything is trained) and
`"disabled"` (no-op: wandb is not even imported and nothing is written).

Nothing secret is logged: runs carry only what the caller passes (trial parameters and
results), and wandb's system metadata (which includes the command line, where a storage URL
with a password may sit) is switched off. wandb is imported lazily, so importing this module
is cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import pathlib
import re
import sys
import tempfile
from typing import Any

from reslstm_jax import interrupts

MODES = ("offline", "online", "disabled")
DEFAULT_PROJECT = "reslstm-jax"
LOGIN_MESSAGE = "W&B online mode needs `wandb login` or WANDB_API_KEY; use --wandb offline"
# W&B keys of the study run
TABLE_KEY = "trials"
PLOT_KEY = "pareto_plot"


# wandb makes two temporary folders when imported (its media and artifact staging areas) and
# leaves their removal to the interpreter's exit, which a command leaving on Ctrl-C or SIGTERM
# skips (`interrupts.leave`): every interrupted sweep worker left two folders in /tmp.
WANDB_TEMPORARY_FOLDERS = (("wandb.sdk.data_types._private", "MEDIA_TMP"),
                           ("wandb.sdk.artifacts.artifact", "Artifact._TMP_DIR"))  # fmt: skip


def remove_wandb_temporary_folders() -> None:
    """Remove the temporary folders of `WANDB_TEMPORARY_FOLDERS` of an imported wandb (none
    made, or another wandb version's layout: nothing to do)."""
    for module_name, path in WANDB_TEMPORARY_FOLDERS:
        folder = sys.modules.get(module_name)
        for name in path.split("."):
            folder = getattr(folder, name, None)
        if isinstance(folder, tempfile.TemporaryDirectory):
            with contextlib.suppress(OSError):
                folder.cleanup()


interrupts.at_leave(remove_wandb_temporary_folders)


class TrackingError(ValueError):
    """W&B cannot be used as asked (e.g. online mode without credentials)."""


@dataclasses.dataclass
class TrialRun:
    """Handle of one trial's W&B run.

    Attributes:
      id: the W&B run id (also the `<id>` of its directory), or None when tracking is disabled.
      name: the run's display name.
    """

    id: str | None
    name: str
    _run: Any = dataclasses.field(default=None, repr=False)
    step: int = 0  # the next W&B step (epochs logged so far)

    @property
    def active(self) -> bool:
        """Whether the run is still open."""
        return self._run is not None


def _settings():
    import wandb

    # Lean settings: no system-stats sampler, git probe, console capture or pip freeze
    # (init+finish ~0.01 s after the first run of a process). x_disable_meta also keeps
    # sys.argv out of the run: a `--storage postgresql://user:password@...` would be there.
    return wandb.Settings(
        x_disable_stats=True,
        disable_git=True,
        disable_code=True,
        console="off",
        x_disable_meta=True,
        x_save_requirements=False,
    )


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _scrub(text: str) -> str:
    """Mask passwords in URLs and the API key, should a message carry them."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    key = os.environ.get("WANDB_API_KEY")
    if key:
        text = text.replace(key, "***")
    return text


def _cell(value: Any) -> Any:
    """A table cell: JSON scalars stay, numpy scalars become Python ones, the rest JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return json.dumps(value, sort_keys=True, default=str)


class Tracker:
    """Records one study's trials as W&B runs.

    Args:
      mode: "offline", "online" or "disabled".
      directory: where wandb writes (its `dir=`); runs land in `<directory>/wandb/`.
      project: the W&B project.
      study: the Optuna study name, used as the W&B group and in run names.

    Raises:
      ValueError: unknown mode.
      TrackingError: online mode without W&B credentials.
    """

    def __init__(
        self,
        mode: str,
        directory: str | os.PathLike,
        project: str = DEFAULT_PROJECT,
        study: str | None = None,
        *,
        entity: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ):
        if mode not in MODES:
            raise ValueError(f"unknown W&B mode {mode!r}; use one of: {', '.join(MODES)}")
        self.mode = mode
        self.directory = pathlib.Path(directory)
        self.project = project
        self.study = study
        self.entity = entity
        self.tags = tuple(tags)
        self._study_run = None
        self._open: dict[int, TrialRun] = {}  # id(handle) -> handle, finished on close()
        if mode == "disabled":
            return
        # wandb prints banners and sync hints for every run; the user may still ask for them.
        os.environ.setdefault("WANDB_SILENT", "true")
        if mode == "online":
            _check_credentials()

    # ------------------------------------------------------------------------------- runs

    def _init(self, **kwargs):
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            return wandb.init(
                mode=self.mode,  # always explicit: without it and without a key, init raises
                dir=self.directory,
                project=self.project,
                entity=self.entity,
                group=self.study,
                tags=list(self.tags) or None,
                reinit="create_new",  # independent runs; wandb.run stays None
                settings=_settings(),
                **kwargs,
            )
        except (wandb.errors.UsageError, wandb.errors.CommError) as exc:
            # AuthenticationError is a CommError; an unreachable server raises CommError
            # after init_timeout (90 s)
            if self.mode != "online":
                raise
            raise TrackingError(_online_message(exc)) from None

    def start_run(self, name: str, config: dict, job_type: str = "train") -> TrialRun:
        """Open a run (one training run of the train CLI: job_type "train").

        Args:
          name: the run's display name.
          config: what the run is trained on and with (`provenance.run_config`).

        Returns:
          The run's handle; `.id` is None when tracking is disabled.
        """
        if self.mode == "disabled":
            return TrialRun(id=None, name=name)
        run = self._init(job_type=job_type, name=name, config=dict(config))
        handle = TrialRun(id=run.id, name=name, _run=run)
        self._open[id(handle)] = handle
        return handle

    def start_trial(self, number: int, config: dict) -> TrialRun:
        """Open the W&B run of one trial ("<study>-trial-<number>", job_type "trial").

        Args:
          number: the Optuna trial number.
          config: the trial's parameters and run record (logged as the run config).
        """
        return self.start_run(f"{self.study}-trial-{number}", config, job_type="trial")

    def log_epochs(self, run: TrialRun, rows: list[dict]) -> None:
        """Log metrics of finished epochs while training runs (an online run shows them live).

        Args:
          run: an open run.
          rows: one dict per epoch, in order, each with "epoch" (1-based; the W&B step is
            epoch - 1) and its metrics, e.g. `train_loss`, `val_uar_mean`, `learning_rate`.
        """
        if not run.active:
            return
        for row in rows:
            step = int(row["epoch"]) - 1
            if step < run.step:  # already logged (a resumed run repeats nothing)
                continue
            run._run.log(dict(row), step=step)
            run.step = step + 1

    def finish_trial(
        self,
        run: TrialRun,
        summary: dict,
        history: dict | None = None,
        images: dict | None = None,
        confusion: dict | None = None,
    ) -> None:
        """Log a run's final results, then close it.

        Call it after the Optuna `tell`: the storage is the record of truth, and a run killed
        before W&B flushes (every 15 s) keeps nothing. wandb-core writes the finished run to
        disk asynchronously, milliseconds after this returns (it completes even if this
        process exits at once); readers in the same process must wait for its exit record.

        Args:
          run: the handle from `start_trial` or `start_run`.
          summary: final results, flat or nested dict of numbers and strings (e.g. "val_uar",
            "n_params").
          history: metric name -> one value per epoch, for epochs not logged with `log_epochs`
            (step i is logged with "epoch" = i + 1).
          images: key -> PNG path, logged once after the history (e.g. the confusion matrix).
          confusion: {"y_true": [N], "y_pred": [N], "classes": [C]}: the interactive W&B
            confusion matrix (key "confusion_matrix"), beside the PNG.
        """
        if not run.active:
            return
        wb = run._run
        steps = max((len(v) for v in (history or {}).values()), default=0)
        for i in range(run.step, steps):
            wb.log({"epoch": i + 1, **{k: v[i] for k, v in history.items() if i < len(v)}}, step=i)
            run.step = i + 1
        media = {}
        if images or confusion:
            import wandb

            media = {k: wandb.Image(str(path)) for k, path in (images or {}).items()}
            if confusion:
                media["confusion_matrix"] = wandb.plot.confusion_matrix(
                    y_true=[int(v) for v in confusion["y_true"]],
                    preds=[int(v) for v in confusion["y_pred"]],
                    class_names=list(confusion["classes"]),
                    title="confusion matrix (pooled test predictions)",
                )
        if media:
            wb.log(media, step=max(run.step, 1))
        wb.summary.update(dict(summary))
        self._finish(run, exit_code=0)

    def fail_trial(self, run: TrialRun, reason: str) -> None:
        """Close a trial's run as failed (exit code 1, summary `{"failed": reason}`)."""
        if not run.active:
            return
        run._run.summary.update({"failed": _scrub(str(reason))[:2000]})
        self._finish(run, exit_code=1)

    def _finish(self, run: TrialRun, exit_code: int) -> None:
        wb, run._run = run._run, None
        self._open.pop(id(run), None)
        wb.finish(exit_code=exit_code)

    # ------------------------------------------------------------------------------ study

    def log_study(
        self,
        trials: list[dict],
        front: list[int],
        metric_x: str = "log10_params",
        metric_y: str = "val_uar",
        config: dict | None = None,
    ) -> None:
        """Log the table of all trials and the UAR-vs-parameters scatter to the study run.

        One process per study logs it (the sweep launcher: `sweeps.run`), so a study has one
        study run. The run (`<study>-pareto`, job_type "pareto") is opened on the first call
        with an id derived from the study name (`study_run_id`: a resumed study continues the
        same W&B run online) and kept for the life of the Tracker; every call logs a new
        version of the table under the same key (the latest is the run summary's), so the
        last call shows the whole study.

        Args:
          trials: one dict per trial (one table row); columns are the union of the keys in
            first-seen order. The trial number is read from "trial" (or "number").
          front: numbers of the trials on the Pareto front (the boolean column "pareto").
          metric_x: column plotted on the x axis.
          metric_y: column plotted on the y axis.
          config: the study run's config (space, objective, corpus, ...), on the first call.

        Raises:
          ValueError: metric_x or metric_y is not a column of the rows.
        """
        if self.mode == "disabled" or not trials:
            return
        import wandb

        columns: list[str] = []
        for row in trials:
            columns += [k for k in row if k not in columns and k != "pareto"]
        missing = [m for m in (metric_x, metric_y) if m not in columns]
        if missing:
            raise ValueError(
                f"log_study: no column {', '.join(map(repr, missing))}; columns: "
                + ", ".join(columns)
            )
        on_front = set(front)
        data = [
            [_cell(row.get(c)) for c in columns] + [row.get("trial", row.get("number")) in on_front]
            for row in trials
        ]
        # mixed types (e.g. None for parameters a model lacks) must not stop a sweep
        table = wandb.Table(columns=[*columns, "pareto"], data=data, allow_mixed_types=True)
        title = f"{self.study}: {metric_y} vs {metric_x}"
        if self._study_run is None:
            self._study_run = self._init(
                job_type="pareto",
                name=f"{self.study}-pareto",
                id=study_run_id(self.study),
                # online, a rerun of the study appends to its run; offline runs are files
                **({"resume": "allow"} if self.mode == "online" else {}),
                config={"study": self.study, "metric_x": metric_x, "metric_y": metric_y,
                        **(config or {})},
            )  # fmt: skip
        self._study_run.log(
            {TABLE_KEY: table, PLOT_KEY: wandb.plot.scatter(table, metric_x, metric_y, title)}
        )
        self._study_run.summary.update({"n_trials": len(trials), "front": sorted(on_front)})

    def close(self) -> None:
        """Finish the study run, and any trial run left open (as failed)."""
        for run in list(self._open.values()):
            self.fail_trial(run, "stopped before the run finished (an error or an interrupt)")
        if self._study_run is not None:
            run, self._study_run = self._study_run, None
            run.finish()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# W&B refuses these in project and entity names (and they would break run paths)
_FORBIDDEN = set("/\\#?%:")


def name_problem(text: str, max_length: int = 64) -> str | None:
    """Why W&B would refuse `text` as a project, entity or tag (None: fine). Checked before
    anything is trained: wandb itself refuses only when a run starts."""
    if not text.strip():
        return "must not be empty"
    bad = sorted(_FORBIDDEN & set(text))
    if bad:
        return f"must not contain {' '.join(bad)}"
    if len(text) > max_length:
        return f"is longer than {max_length} characters"
    return None


def name_problems(project: str | None, entity: str | None, tags=()) -> list[tuple[str, str, str]]:
    """(what, name, problem) for every name W&B would refuse; `what` is "project", "entity"
    or "tag". Empty when all are fine."""
    named = [("project", project, 128), ("entity", entity, 128),
             *(("tag", tag, 64) for tag in tags)]  # fmt: skip
    return [(what, name, problem) for what, name, limit in named if name is not None
            for problem in [name_problem(name, limit)] if problem]  # fmt: skip


def study_run_id(study: str) -> str:
    """The W&B run id of a study's study run: a function of the study name alone (W&B ids
    allow letters, digits, "-" and "_" only, so the name is hashed)."""
    import hashlib

    return "study-" + hashlib.sha256(study.encode()).hexdigest()[:16]


def _online_message(exc: Exception) -> str:
    """One line for a failed online start; wandb's reasons never hold the key (scrubbed anyway)."""
    import wandb

    text = str(exc)
    if "No API key" in text:
        return LOGIN_MESSAGE
    reason = _scrub(text).strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, wandb.errors.AuthenticationError):  # e.g. a malformed WANDB_API_KEY
        return f"{reason}; {LOGIN_MESSAGE}"
    return f"W&B online mode failed: {reason}; use --wandb offline"


def require_credentials(mode: str) -> None:
    """For an entry point, before any work: TrackingError (one line) when `mode` is "online"
    and W&B has no credentials here (the Tracker checks again when it is made)."""
    if mode == "online":
        _check_credentials()


def _check_credentials() -> None:
    """Fail before any training when online mode has no credentials.

    Without this, the first `wandb.init` would raise only after a trial was asked, or, on a
    terminal, prompt for a key in every worker process.
    """
    import wandb

    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth
    except ImportError:  # another wandb layout: wandb.init raises instead (see Tracker._init)
        return
    # wandb >= 0.31 can check without storing the credentials in the session; 0.30 has no
    # such switch (its check stores them, as wandb.init would a moment later).
    accepts = inspect.signature(wbauth.authenticate_session).parameters
    keep_session = {"update_session": False} if "update_session" in accepts else {}
    try:
        auth = wbauth.authenticate_session(
            host=wandb_setup.singleton().settings.base_url,
            source="reslstm_jax",
            prompt=False,
            **keep_session,
        )
    except wandb.errors.AuthenticationError as exc:
        raise TrackingError(_online_message(exc)) from None
    if auth is None:
        raise TrackingError(LOGIN_MESSAGE)


def offline_runs(directory: str | os.PathLike) -> list[pathlib.Path]:
    """Offline run directories under `directory`, oldest first (by their timestamped names).

    Searches `directory/wandb/` and, for a directory holding several studies, below it.
    Each result can be uploaded with `wandb sync <path>`.
    """
    root = pathlib.Path(directory)
    found = {
        p
        for p in root.rglob("offline-run-*")
        if p.is_dir() and p.parent.name == "wandb" and any(p.glob("run-*.wandb"))
    }
    return sorted(found, key=lambda p: (p.name, str(p)))
