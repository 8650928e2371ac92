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

A name a block uses without binding it is one of the usual aliases (`rj`, `jax`, `jnp`, `np`)
or a module of the project by its short name (`data.prepare`, `artifacts.write_json`), as
the docs write them. The `python` blocks of the project's docstrings (modules, classes,
functions) are checked the same way, a docstring's own module's names needing no import.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import re
import textwrap
import typing

import pytest
from doc_blocks import REPO, fenced_blocks
from numerics import assert_rounding_close

ALIASES = {"rj": "reslstm_jax", "jax": "jax", "jnp": "jax.numpy", "np": "numpy"}
ALIASES |= {name: name for name in ("reslstm_jax", "sweeps", "experiments")}
# where a short module name is looked up, in order
PACKAGES = ("reslstm_jax", "reslstm_jax.train", "reslstm_jax.export", "reslstm_jax.corpora",
            "reslstm_jax.models", "sweeps", "experiments")  # fmt: skip
SOURCES = sorted(
    p
    for package in ("reslstm_jax", "sweeps", "experiments")
    for p in (REPO / package).rglob("*.py")
)


def module_named(name: str):
    """The module a block means by an unbound name, or None."""
    candidates = [ALIASES[name]] if name in ALIASES else [f"{p}.{name}" for p in PACKAGES]
    for candidate in candidates:
        try:
            return importlib.import_module(candidate)
        except ImportError:
            continue
    return None


MISSING = object()


def attribute_of(owner, name: str):
    """`owner.name`, a module's submodule included (imported on first use), or MISSING."""
    value = getattr(owner, name, MISSING)
    if value is MISSING and inspect.ismodule(owner):
        with contextlib.suppress(ImportError):
            value = importlib.import_module(f"{owner.__name__}.{name}")
    return value


@dataclasses.dataclass
class Block:
    where: str  # file:line of the fence
    source: str
    module: str | None = None  # a docstring's module: its own names need no import

    def __str__(self) -> str:
        return self.where


def docstring_blocks() -> list[Block]:
    """The `python` blocks of the project's docstrings (modules, classes, functions)."""
    blocks = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(text)):
            kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            if not isinstance(node, kinds) or not ast.get_docstring(node):
                continue
            # the docstring as written, so that a block's "\\n" stays an escape of its code
            literal = node.body[0].value
            docstring = ast.get_source_segment(text, literal)
            for found in re.finditer(r"```python\n(.*?)```", docstring, re.S):
                line = literal.lineno + docstring[: found.start()].count("\n")
                where = f"{path.relative_to(REPO)}:{line}"
                blocks.append(Block(where, textwrap.dedent(found.group(1)), module))
    return blocks


def python_blocks() -> list[Block]:
    """The `python` blocks of README.md and docs/*.md."""
    return [Block(f"{where}:{fence}", "\n".join(line for _, line in lines))
            for where, fence, lines in fenced_blocks(("```python",))]  # fmt: skip


BLOCKS = python_blocks()
DOCSTRING_BLOCKS = docstring_blocks()


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

    def __init__(self, module: str | None = None) -> None:
        self.own = importlib.import_module(module) if module else None
        self.names: dict[str, object] = {}
        self.bound: set[str] = set()
        self.problems: list[str] = []
        self.checked = 0  # references and calls resolved and found to fit

    def run(self, source: str) -> list[str]:
        tree = ast.parse(source)
        # names the block binds itself (assignments, loops, `with ... as`): never a module
        self.bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                      and isinstance(n.ctx, ast.Store)}  # fmt: skip
        self.bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
                       for a in (*n.posonlyargs, *n.args, *n.kwonlyargs)}  # fmt: skip
        for statement in tree.body:
            self.visit(statement)
        return self.problems

    # bindings
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            module = importlib.import_module(alias.name)
            if alias.asname:
                self.names[alias.asname] = module
            else:  # `import a.b` binds `a`
                self.names[alias.name.split(".")[0]] = importlib.import_module(
                    alias.name.split(".")[0]
                )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = importlib.import_module(node.module)
        for alias in node.names:
            value = attribute_of(module, alias.name)
            if value is MISSING:
                self.problems.append(f"line {node.lineno}: {node.module} has no {alias.name}")
            else:
                self.names[alias.asname or alias.name] = value

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
        exists = _has(cls, node.attr) if cls else attribute_of(owner, node.attr) is not MISSING
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
            if node.id in self.names or node.id in self.bound:
                return self.names.get(node.id)
            if self.own is not None and hasattr(self.own, node.id):
                return getattr(self.own, node.id)
            return module_named(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            if isinstance(owner, Instance):
                member = inspect.getattr_static(owner.cls, node.attr, None)
                if inspect.isfunction(member):
                    return getattr(owner.cls, node.attr).__get__(object.__new__(owner.cls))
                return _annotation(owner.cls, node.attr)
            value = MISSING if owner is None else attribute_of(owner, node.attr)
            return None if value is MISSING else value
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


@pytest.mark.parametrize("block", DOCSTRING_BLOCKS, ids=str)
def test_a_docstring_example_names_what_exists(block):
    """A docstring's `python` block is code (a schematic goes in a plain block)."""
    checker = Checker(block.module)
    problems = checker.run(block.source)
    assert not problems, f"{block}:\n" + "\n".join(problems)
    assert checker.checked >= 1, f"{block}: the checker resolved nothing"


@pytest.mark.parametrize(
    "module, source, problem",
    [
        (None, "import reslstm_jax as rj\nrj.models.gett('lstm_sa')", "has no attribute gett"),
        (None, "from reslstm_jax import data\ndata.prepare(extracter='mfcc')",
         "unexpected keyword"),
        (None, "from reslstm_jax import data\nd = data.prepare()\nd.cards",
         "Dataset has no attribute cards"),
        (None, "from reslstm_jax import data\nd = data.prepare()\nd.extraction.summry()",
         "ExtractionReport has no attribute summry"),
        (None, "from reslstm_jax import train\ntrain.RunSettings(seed=(0,))", "unexpected keyword"),
        (None, "from reslstm_jax import nope", "reslstm_jax has no nope"),
        (None, "rj.count_params(1, 2)", "too many positional"),
        # a module by its short name
        (None, "artifacts.write_jsn(path, {})", "has no attribute write_jsn"),
        # a docstring's own module: its names need no import
        ("reslstm_jax.train.layout", "ModelLayout(config=2, seeds=(0,), folds=('a',))",
         "unexpected keyword"),
        ("reslstm_jax.train.layout", "layout = ModelLayout(2, (0,), ('a',))\nlayout.indx(0, 0, 0)",
         "ModelLayout has no attribute indx"),
    ],
)  # fmt: skip
def test_the_checker_finds_what_does_not_exist(module, source, problem):
    problems = Checker(module).run(source)
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
    found = [b for b in BLOCKS if b.where.startswith(f"{where}:")]
    assert found, f"no python block in {where}"
    return found[0]


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
    # The compiled call gives the direct call's numbers up to rounding, as the README says: the
    # same operations, fused by XLA into other kernels (MODEL_ULPS' reasoning in test_nn.py: 64
    # ulps; measured on machine D: 0 on the README's zeros, 2.0 on random features).
    x = jax.random.normal(jax.random.key(3), names["x"].shape)
    direct = names["model"].apply(names["variables"], x, names["lengths"])
    compiled = names["apply"](names["variables"], x, names["lengths"], train=False)
    assert_rounding_close(compiled, direct, ulps=64, err_msg="jit(apply) against apply")
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
    names.update({name: module_named(name) for name in ("rj", "jax")})
    exec(compile(block.source, block.where, "exec"), names)  # noqa: S102
    assert names["logits"].shape == (2, 8) and names["extras"]["attention"].shape == (2, 128)
