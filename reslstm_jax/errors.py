"""Errors of library calls phrased in API terms, which each command line words as its flags.

```python
raise ParameterError("{corpus} {value} needs {data_dir} (where the corpus is)",
                     value="emodb")
str(exc)                  # "corpus emodb needs data_dir (where the corpus is)"
exc.phrased(as_flag)      # "--corpus emodb needs --data-dir (where the corpus is)"
```
The library never names a flag: `reslstm_jax.data.prepare` is called by the train CLI, the
experiments and the sweeps, each with its own flags for the same parameters.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator


class ParameterError(ValueError):
    """A bad argument (or combination) of a library call.

    Args:
      template: the message; `{name}` fields that are not in `values` are parameter names,
        rendered by `phrased` (as themselves in `str(exc)`).
      values: the other fields (values quoted in the message).
    """

    def __init__(self, template: str, **values):
        self.template = template
        self.values = values
        self.parameters = [
            field for _, field, _, _ in string.Formatter().parse(template)
            if field and field not in values
        ]  # fmt: skip
        super().__init__(self.phrased(lambda name: name))

    def phrased(self, name_of: Callable[[str], str]) -> str:
        """The message with each parameter named by `name_of(parameter)`."""
        return self.template.format(**{p: name_of(p) for p in self.parameters}, **self.values)


def as_flag(parameter: str) -> str:
    """The conventional flag of a parameter: data_dir -> --data-dir."""
    return "--" + parameter.replace("_", "-")


def cli_message(exc: BaseException, name_of: Callable[[str], str] = as_flag) -> str:
    """One line for a command line: a ParameterError in flag terms, anything else as is."""
    if isinstance(exc, ParameterError):
        return exc.phrased(name_of)
    return str(exc)


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, then its causes and contexts, each once (an error raised while handling another,
    as orbax wraps tensorstore's): where a library's reason for a failure may be found."""
    pending, seen = [exc], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        pending += [error.__cause__, error.__context__]
