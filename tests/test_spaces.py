"""Space files: YAML (or the older .py form) from anywhere, checked when loaded."""

from __future__ import annotations

import optuna
import pytest

from sweeps import spaces

GRID = """\
description: two points
objectives: [[uar, maximize], [n_params, minimize]]
fixed: {batch_size: 16}
grid:
  - {model: lstm_sa, hidden_size: 8}
  - {model: reslstm_sa, hidden_size: 8}
"""
SEARCH = """\
objectives: [[uar, maximize]]
sampler: nsga2
fixed: {model: reslstm_sa}
search:
  lr: {type: float, low: 1e-4, high: 1e-2, log: true}
  res_blocks: {type: int, low: 1, high: 3}
  dropout: {type: float, low: 0.1, high: 0.5, name: dropout_rate}
  loss: {type: categorical, choices: [ce, focal]}
"""


def test_a_yaml_grid_from_any_folder(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GRID)
    space = spaces.load(str(path))
    assert (space.name, space.source, space.sampler) == ("mine", str(path), "grid")
    assert space.grid == ({"model": "lstm_sa", "hidden_size": 8},
                          {"model": "reslstm_sa", "hidden_size": 8})  # fmt: skip
    assert space.metrics == ["uar", "n_params"] and space.families == ["lstm_sa", "reslstm_sa"]
    assert space.complete(dict(space.grid[0]))["batch_size"] == 16  # fixed over the recipe
    product = tmp_path / "product.yml"
    product.write_text("grid: {model: [lstm_sa, reslstm_sa], hidden_size: [8, 16]}\n")
    assert [tuple(p.values()) for p in spaces.load(str(product)).grid] == [
        ("lstm_sa", 8), ("lstm_sa", 16), ("reslstm_sa", 8), ("reslstm_sa", 16)]  # fmt: skip


def test_a_yaml_search_names_optunas_parameters_as_asked(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(SEARCH)
    space = spaces.load(str(path))
    assert space.sampler == "nsga2" and space.directions == ["maximize"]
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(0)).ask()
    point = space.suggest(trial)
    assert set(point) == {"lr", "res_blocks", "dropout", "loss"}
    assert set(trial.params) == {"lr", "res_blocks", "dropout_rate", "loss"}
    assert 1e-4 <= point["lr"] <= 1e-2 and point["res_blocks"] in (1, 2, 3)
    assert trial.distributions["lr"].log  # `1e-4` is a float in these files, as in JSON


def test_the_shipped_spaces_are_files_of_the_same_form():
    for name in spaces.names():
        assert spaces.load(name).source == name
        assert (spaces.HERE / f"{name}.yaml").is_file()
    paper = spaces.load("paper")  # the notebook's Optuna names, kept
    trial = optuna.create_study().ask()
    point = paper.suggest(trial)
    assert set(point) == {"learning_rate", "batch_size", "dropout", "weight_decay", "t0"}
    assert set(trial.params) == {"lr", "batch_size", "dropout_rate", "wd", "t_0_loop"}


def test_the_older_python_form_from_a_path(tmp_path):
    path = tmp_path / "old.py"
    path.write_text('DESCRIPTION = "x"\nOBJECTIVES = (("uar", "maximize"),)\n'
                    'GRID = [{"model": "lstm_sa", "hidden_size": 8}]\n')  # fmt: skip
    assert spaces.load(str(path)).grid == ({"model": "lstm_sa", "hidden_size": 8},)


@pytest.mark.parametrize(
    "text, message",
    [
        (GRID.replace("fixed:", "fixd:"), "fixd is not a field of a space (did you mean fixed?)"),
        (GRID.replace("hidden_size: 8}\n  - {model: res", "hiden_size: 8}\n  - {model: res"),
         "hiden_size"),
        (GRID + SEARCH.split("search:")[1], "not YAML"),
        (GRID + "search: {lr: {type: float, low: 1, high: 2}}\n", "exactly one of grid"),
        (SEARCH.replace("log: true", "lg: true"),
         "search.lr: lg is not a field of a float distribution (did you mean log?)"),
        (SEARCH.replace("type: int", "type: integer"), "search.res_blocks needs type: float"),
        (SEARCH.replace("low: 1e-4", "low: 1e-1"), "search.lr: needs low < high"),
        (SEARCH.replace("low: 1, high: 3", "low: 1.5, high: 3"), "needs whole low and high"),
        (SEARCH.replace("[ce, focal]", "[]"), "search.loss: choices must be a non-empty list"),
        (SEARCH.replace("nsga2", "random"), "sampler 'random' is not one of tpe, nsga2"),
        (SEARCH.replace("[[uar, maximize]]", "[[n_params, minimize]]"),
         "the first objective must be [uar, maximize]"),
        ("grid: []\n", "grid is a list of points"),
        ("- 1\n", "a space file is a mapping"),
    ],
)  # fmt: skip
def test_a_bad_space_file_fails_at_load_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(spaces.SpaceError) as exc:
        spaces.load(str(path))
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "value, message",
    [("nope", "unknown space 'nope'"), ("./none.yaml", "--space ./none.yaml: no such file"),
     ("{tmp}/space.txt", "a space file ends in .yaml"), ("hidden_sizes.json", "unknown space")],
)  # fmt: skip
def test_a_bare_name_is_only_a_shipped_space_and_a_path_only_a_file(value, message, tmp_path):
    # A file that exists but is no space file: written here, so that the case holds in any
    # working directory (a relative path to a system file exists on one machine only).
    (tmp_path / "space.txt").write_text("search: {}\n")
    with pytest.raises(spaces.SpaceError, match=message):
        spaces.load(value.format(tmp=tmp_path))
