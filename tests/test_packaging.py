"""The checkout builds into an sdist and a wheel that hold what an installed copy needs.

Built with `python -m build --outdir TMP REPO` (pypa/build, the `dev` extra): the sdist first,
then the wheel from the unpacked sdist, so a file the sdist leaves out is missing from the
wheel too. The build backend (`[build-system] requires`) is installed into build's isolated
environment, as pip does for any user. Skipped when `build` is not installed.

The wheel then installs (`pip install --no-deps --target`) into a folder of its own, and from
another folder the commands run on that copy (the suite's environment gives the dependencies):
the packages and their data files are found there, not in the checkout. Installing the wheel
with its dependencies into a fresh environment and training from another folder is too slow
for the suite (JAX's install and compiles): `make package-check` does that (docs/install.md).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_sdist_and_wheel_hold_the_packages_their_data_and_the_licence(tmp_path):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the `build` module is not installed (the dev extra: pip install -e '.[dev]')")
    # Isolated, as a user's build: the build backend pyproject names, installed fresh. By uv
    # where `make` installed it (the same isolation in half the time: 5 s against 10 s on a
    # 2-core VM), by pip otherwise.
    installer = ["--installer", "uv"] if importlib.util.find_spec("uv") else []
    result = subprocess.run(
        [sys.executable, "-m", "build", *installer, "--outdir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("reslstm_jax-*-py3-none-any.whl")
    (sdist,) = tmp_path.glob("reslstm_jax-*.tar.gz")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    dist_info = {name.split("/")[0] for name in names if ".dist-info/" in name}
    assert len(dist_info) == 1
    (dist_info,) = dist_info
    expected = {
        "reslstm_jax/__init__.py",
        "sweeps/run.py",
        "experiments/report.py",
        f"{dist_info}/licenses/LICENSE",
        *(f"sweeps/spaces/{path.name}" for path in (REPO / "sweeps/spaces").glob("*.yaml")),
        *(f"experiments/setups/{p.name}" for p in (REPO / "experiments/setups").glob("*.yaml")),
    }
    assert any(name.endswith(".yaml") for name in expected)
    assert expected <= names, sorted(expected - names)
    # the three packages and the metadata, nothing else at the top (no tests/, no docs/)
    assert {name.split("/")[0] for name in names} == {
        "reslstm_jax",
        "sweeps",
        "experiments",
        dist_info,
    }

    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[-1] for name in archive.getnames()}
    assert {"pyproject.toml", "LICENSE", "README.md"} <= members

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere.mkdir()

    def from_the_wheel(*argv):
        env = {**os.environ, "PYTHONPATH": str(site)}
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              cwd=elsewhere, env=env, timeout=300)  # fmt: skip

    where = from_the_wheel("-c", "import reslstm_jax, sweeps, experiments as e; "
                           "print(*(m.__file__ for m in (reslstm_jax, sweeps, e)))")  # fmt: skip
    assert where.returncode == 0, where.stderr[-3000:]
    assert all(path.startswith(str(site)) for path in where.stdout.split()), where.stdout
    for module in ("reslstm_jax.train", "sweeps.run", "experiments.report", "reslstm_jax.predict"):
        helped = from_the_wheel("-m", module, "--help")
        assert helped.returncode == 0 and "usage: python -m" in helped.stdout, helped.stderr
    # the shipped space and experiment files are the wheel's package data
    space = from_the_wheel("-m", "sweeps.run", "--space", "hidden_sizes", "--print-config")
    assert space.returncode == 0 and "hidden_sizes" in space.stdout, space.stderr[-3000:]
    setup = from_the_wheel("-m", "experiments.run", "ravdess_reslstm_sa", "--print-config")
    assert setup.returncode == 0 and "reslstm_sa" in setup.stdout, setup.stderr[-3000:]


CONSTRAINTS = sorted((REPO / "requirements").glob("constraints-py*.txt"))


def python_of(constraints: pathlib.Path) -> tuple[int, int]:
    """(3, 11) of `constraints-py3.11.txt`: the Python whose verified set it is."""
    import re

    major, minor = re.fullmatch(r"constraints-py(\d+)\.(\d+)\.txt", constraints.name).groups()
    return int(major), int(minor)


def project_table() -> dict:
    """pyproject.toml's [project]."""
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("constraints", CONSTRAINTS, ids=lambda p: p.name)
def test_each_constraints_file_pins_everything_make_test_installs(constraints):
    """`make test` installs the project with its test extras (and a device the `edge` extra)
    from the constraints file of the running Python: each requirement that applies to that
    Python is pinned there, at a version pyproject's range allows, or the install fails (the
    3.10 file once pinned a scikit-learn under the opensmile extra's floor)."""
    import re

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    version = ".".join(map(str, python_of(constraints)))
    pins = {}
    for line in constraints.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned.strip()
    project = project_table()
    makefile = (REPO / "Makefile").read_text()
    extras = re.search(r"^TEST_EXTRAS := (.*)$", makefile, re.M).group(1).split(",") + ["edge"]
    wanted = [(r, "") for r in project["dependencies"]]
    wanted += [(r, e) for e in extras for r in project["optional-dependencies"][e]]
    environment = {**default_environment(), "python_version": version,
                   "python_full_version": f"{version}.0"}  # fmt: skip
    problems = []
    for text, extra in wanted:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({**environment, "extra": extra}):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{text} [{extra or 'core'}]: pinned {pinned}")
    assert len(wanted) > 25 and not problems, problems


def test_the_supported_pythons_are_the_verified_ones():
    """requires-python, the classifiers and the constraints files name the same Pythons: each
    supported minor has a verified set, and the oldest is the floor `make` and pip enforce."""
    import re

    project = project_table()
    classified = sorted(
        tuple(map(int, c.rsplit(" ", 1)[1].split(".")))
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    verified = sorted(map(python_of, CONSTRAINTS))
    assert classified == verified and classified
    major, minor = classified[0]
    assert project["requires-python"] == f">={major}.{minor}"
    assert f"sys.version_info < ({major}, {minor})" in (REPO / "Makefile").read_text()
