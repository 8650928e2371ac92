"""The Python examples of README.md and docs/*.md are checked, as their shell commands are
(tests/test_doc_commands.py), so an example cannot rot when the API moves:

- every fenced `python` block parses;
- every name a block takes from the project exists: modules, functions, classes, their
  attributes and methods (followed through return and field annotations, `dataset =
  data.prepare()` then `dataset.card`), and every call's keyword arguments and number of
  positional arguments fit the signature it calls;
- the README's first example and the models page's API block run as written (the reader's
  own names, such as a reference `state_dict`, supplied here), and what their comments
  promise holds (the parameter count, the shapes, what `apply` returns).

A block's names come from its own imports, else from the docs' usual ones (`DEFAULT_NAMES`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pathlib
import typing

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The names the docs use without importing them in the block (docs/models.md's API block
# continues the README's `import reslstm_jax as rj`).
DEFAULT_NAMES = {
    "rj": "reslstm_jax",
    "data": "reslstm_jax.data",
    "train": "reslstm_jax.train",
    "protocols": "reslstm_jax.protocols",
    "jax": "jax",
    "jnp": "jax.numpy",
}


@dataclasses.dataclass
class Block:
    where: str  # file:line of the fence
    source: str

    def __str__(self) -> str:
        return self.where


def python_blocks() -> list[Block]:
    blocks = []
    for path in DOCS:
        lines, start = None, 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if lines is None and line.strip() == "```python":
                lines, start = [], number
            elif lines is not None and line.strip().startswith("```"):
                blocks.append(Block(f"{path.relative_to(REPO)}:{start}", "\n".join(lines)))
                lines = None
            elif lines is not None:
                lines.append(line)
    return blocks


BLOCKS = python_blocks()


# ----------------------------------------------------------------------------- static check


@dataclasses.dataclass(frozen=True)
class Instance:
    """A value of a known class (the annotated return of a call, or a field)."""

    cls: type


def _annotation(owner, name: str | None = None):
    """The class an annotation names (`owner`'s return, or its attribute `name`), or None."""
    try:
        if name is None:
            hint = typing.get_type_hints(owner).get("return")
        else:
            member = inspect.getattr_static(owner, name, None)
            if isinstance(member, property):
                hint = typing.get_type_hints(member.fget).get("return")
            else:
                hint = typing.get_type_hints(owner).get(name)
    except Exception:  # an annotation that does not evaluate: the value stays unknown
        return None
    return Instance(hint) if isinstance(hint, type) else None


def _has(cls: type, name: str) -> bool:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        hints = getattr(cls, "__annotations__", {})
    return hasattr(cls, name) or name in fields or name in hints


class Checker(ast.NodeVisitor):
    """Resolves what it can of a block's names and reports what does not exist."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {}
        self.problems: list[str] = []
        self.checked = 0  # references and calls resolved and found to fit

    def run(self, source: str) -> list[str]:
        tree = ast.parse(source)
        imports_rj = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)
        if not imports_rj:
            for name, module in DEFAULT_NAMES.items():
                self.names[name] = importlib.import_module(module)
        for statement in tree.body:
            self.visit(statement)
        return self.problems

    # bindings
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            module = importlib.import_module(alias.name)
            if alias.asname:
                self.names[alias.asname] = module
            else:
                self.names[alias.name.split(".")[0]] = importlib.import_module(
                    alias.name.split(".")[0]
                )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = importlib.import_module(node.module)
        for alias in node.names:
            if not hasattr(module, alias.name):
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    self.problems.append(f"line {node.lineno}: {node.module} has no {alias.name}")
                    continue
            self.names[alias.asname or alias.name] = getattr(module, alias.name)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self.resolve(node.value)
        for target in node.targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    self.names.pop(name.id, None)  # unknown unless a single name below
            if isinstance(target, ast.Name) and value is not None:
                self.names[target.id] = value

    # references
    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        owner = self.resolve(node.value)
        if owner is None:
            return
        cls = owner.cls if isinstance(owner, Instance) else None
        exists = _has(cls, node.attr) if cls else hasattr(owner, node.attr)
        if not exists and inspect.ismodule(owner):
            try:
                importlib.import_module(f"{owner.__name__}.{node.attr}")
                exists = True
            except ImportError:
                pass
        if exists:
            self.checked += 1
        else:
            what = cls.__name__ if cls else getattr(owner, "__name__", repr(owner))
            self.problems.append(f"line {node.lineno}: {what} has no attribute {node.attr}")

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        function = self.resolve(node.func)
        if function is None or isinstance(function, Instance) or not callable(function):
            return
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            return  # *args / **kwargs of the reader's: nothing to bind
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as error:
            if "missing" in str(error):  # a required argument left to the reader's **config
                try:
                    signature.bind_partial(*node.args, **{k.arg: k.value for k in node.keywords})
                except TypeError as partial_error:
                    error = partial_error
                else:
                    self.checked += 1
                    return
            name = getattr(function, "__qualname__", repr(function))
            self.problems.append(f"line {node.lineno}: {name}(...): {error}")
            return
        self.checked += 1

    def resolve(self, node: ast.expr):
        """The object (module, class, function, Instance) an expression names, or None."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            if isinstance(owner, Instance):
                member = inspect.getattr_static(owner.cls, node.attr, None)
                if inspect.isfunction(member):
                    return getattr(owner.cls, node.attr).__get__(object.__new__(owner.cls))
                return _annotation(owner.cls, node.attr)
            if owner is None:
                return None
            if not hasattr(owner, node.attr) and inspect.ismodule(owner):
                try:
                    return importlib.import_module(f"{owner.__name__}.{node.attr}")
                except ImportError:
                    return None
            return getattr(owner, node.attr, None)
        if isinstance(node, ast.Call):
            function = self.resolve(node.func)
            if isinstance(function, type):
                return Instance(function)
            if callable(function) and not isinstance(function, Instance):
                return _annotation(function)
        return None


def test_the_docs_hold_python_examples():
    where = {b.where.split(":")[0] for b in BLOCKS}
    assert {"README.md", "docs/models.md", "docs/data.md", "docs/training.md"} <= where


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_a_documented_python_example_names_what_exists(block):
    checker = Checker()
    problems = checker.run(block.source)
    assert not problems, f"{block}:\n" + "\n".join(problems)
    assert checker.checked >= 3, f"{block}: the checker resolved almost nothing"


@pytest.mark.parametrize(
    "source, problem",
    [
        ("import reslstm_jax as rj\nrj.models.gett('lstm_sa')", "has no attribute gett"),
        ("from reslstm_jax import data\ndata.prepare(extracter='mfcc')", "unexpected keyword"),
        ("from reslstm_jax import data\nd = data.prepare()\nd.cards",
         "Dataset has no attribute cards"),
        ("from reslstm_jax import data\nd = data.prepare()\nd.extraction.summry()",
         "ExtractionReport has no attribute summry"),
        ("from reslstm_jax import train\ntrain.RunSettings(seed=(0,))", "unexpected keyword"),
        ("from reslstm_jax import nope", "reslstm_jax has no nope"),
        ("rj.count_params(1, 2)", "too many positional"),
    ],
)  # fmt: skip
def test_the_checker_finds_what_does_not_exist(source, problem):
    problems = Checker().run(source)
    assert any(problem in p for p in problems), problems


def test_the_checker_accepts_what_exists():
    source = (
        "from reslstm_jax import data, protocols\n"
        "d = data.prepare('ravdess', '~/x', normalisation='global')\n"
        "print(d.extraction.summary(), protocols.format_card(d.card))\n"
    )
    checker = Checker()
    assert checker.run(source) == [] and checker.checked >= 6


# ----------------------------------------------------------------------------- run


def _block(where: str) -> Block:
    (block,) = [b for b in BLOCKS if b.where.startswith(where)][:1] or [None]
    assert block is not None, f"no python block in {where}"
    return block


def test_the_readmes_example_runs_as_written():
    """The first code a reader runs: the model, its count, eval and training calls, the
    compiled call and the reference weights' import, each as its comment says."""
    import jax
    import numpy as np

    import reslstm_jax as rj

    block = _block("README.md")
    reference = rj.models.get("reslstm_sa", hidden_size=64, input_size=46, num_classes=8)
    state_dict = rj.interop.to_torch_state_dict(reference.init(jax.random.key(7)))
    names: dict = {"state_dict": state_dict}
    exec(compile(block.source, block.where, "exec"), names)  # noqa: S102 (the docs' own code)
    assert 'rj.count_params(variables["params"])  # 46772' in block.source
    assert rj.count_params(names["variables"]["params"]) == 46772
    logits, extras = names["logits"], names["extras"]
    assert logits.shape == (2, 8) and extras["attention"].shape == (2, 128)
    assert jax.tree_util.tree_structure(names["batch_stats"]) == jax.tree_util.tree_structure(
        names["variables"]["batch_stats"]
    )
    # the compiled call gives the eager call's numbers up to float32 rounding
    eager, _ = names["model"].apply(names["variables"], names["x"], names["lengths"])
    compiled, _ = names["apply"](names["variables"], names["x"], names["lengths"], train=False)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    # the last line loaded the given reference weights
    loaded = rj.interop.to_torch_state_dict(names["variables"])
    assert all(np.array_equal(loaded[k], state_dict[k]) for k in state_dict)


def test_the_models_api_block_runs_with_the_readers_names():
    import jax
    import jax.numpy as jnp

    block = _block("docs/models.md")
    names = {
        "name": "reslstm_sa",
        "config": {"hidden_size": 64},
        "key": jax.random.key(0),
        "x": jnp.zeros((2, 128, 46)),  # the README's shapes: their programs are shared
        "lengths": jnp.array([87, 124]),
        "rate": 0.2,
    }
    names.update({name: importlib.import_module(m) for name, m in DEFAULT_NAMES.items()})
    exec(compile(block.source, block.where, "exec"), names)  # noqa: S102
    assert names["logits"].shape == (2, 8) and names["extras"]["attention"].shape == (2, 128)
