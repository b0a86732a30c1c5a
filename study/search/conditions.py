"""Conditions of a search space (`search.conditions`: key → condition): when a parameter is sampled.

* **Forms.** ``<key> in [a, b, …]``, ``<key> not in [a, b, …]``, ``<key> == v``, ``<key> != v``, or
  ``always`` (switch a built-in condition off). The values are parsed by the same Hydra grammar
  (`study.search.grammar`), i.e. like YAML scalars: ``true``/``false``, ``null``, ints, floats, otherwise
  strings (``none`` is the string ``"none"``, a clip mode). Enums are compared by their string value.
  Where the YAML writes no condition for a key, the built-in one in `DEFAULT_CONDITIONS` applies (e.g.
  ``model.activation`` only for rnn/esn cells), so a conditional parameter is never sampled where the
  trial would ignore (or refuse) it.
* **What a condition reads.** The value sampled (or fixed) for the condition's key in this trial if it
  is a parameter that applied; otherwise the base config's value (``base(key)``), which is what the trial
  will actually run with.
* **Order.** Parameters are sampled in YAML order, except that a parameter a condition depends on is
  sampled before the parameters that depend on it (a stable topological order, study/search/space.py
  `by_conditions`); a cycle is an
  error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from hydra.errors import HydraException

from study.search.syntax import SearchError, parse_override, plain, scalar_ok
from workers.config import CELL_KEYS, LAMBDA1_INITS
from workers.values import is_number

__all__ = ["Condition", "DEFAULT_CONDITIONS", "VALID_CONDITIONS", "parse_condition"]

VALID_CONDITIONS = "'<key> in [a, b, ...]', '<key> not in [a, ...]', '<key> == v', '<key> != v' or 'always'"

def _cells(cells) -> str:
    names = [c.value for c in cells]
    return f"model.cell == {names[0]}" if len(names) == 1 else f"model.cell in [{', '.join(names)}]"


# Conditions that apply to well-known keys when search.conditions writes none for them: the cell-specific
# keys of workers.config.CELL_KEYS, init_gain for the λ1 inits, and two training keys.
DEFAULT_CONDITIONS: dict[str, str] = {
    **{key: _cells(cells) for key, cells in CELL_KEYS.items()},
    "model.init_gain": f"model.init in [{', '.join(i.value for i in LAMBDA1_INITS)}]",
    "train.clip.threshold": "train.clip.mode != none",
    "train.momentum": "train.optimizer in [momentum, rmsprop]",
}


def _equal(a: Any, b: Any) -> bool:
    """Equality for conditions: enums by value, bools only equal bools, numbers numerically, otherwise
    by type, falling back to the string forms for mixed types (e.g. a str key compared with `== 1`)."""
    a, b = plain(a), plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if type(a) is type(b):
        return a == b
    return str(a) == str(b)


@dataclass(frozen=True)
class Condition:
    """`key op values`: the parameter applies when the config value at `key` satisfies it."""

    key: str
    op: str                 # "in", "not in", "==", "!="
    values: tuple           # one value for == and !=
    text: str               # the condition as written
    builtin: bool = False   # from DEFAULT_CONDITIONS, not from search.conditions

    def holds(self, value: Any) -> bool:
        found = any(_equal(value, v) for v in self.values)
        return found if self.op in ("in", "==") else not found


_CONDITION = re.compile(
    r"\s*(?P<key>[A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)"
    r"(?:\s+(?P<word>not\s+in|in)\s+|\s*(?P<sym>==|!=)\s*)"
    r"(?P<rhs>.*?)\s*"
)


def parse_condition(param_key: str, text: Any, builtin: bool = False) -> Optional[Condition]:
    """A condition parsed from its text; None for ``always``. Raises SearchError if it is malformed."""

    def bad(reason: str) -> SearchError:
        return SearchError(f"search.conditions.{param_key}", text, VALID_CONDITIONS, reason)

    if not isinstance(text, str):
        raise bad("a condition is a string")
    if text.strip() == "always":
        return None
    m = _CONDITION.fullmatch(text)
    if not m:
        raise bad("not of the form '<key> <op> <value(s)>'")
    key, rhs = m["key"], m["rhs"]
    op = " ".join(m["word"].split()) if m["word"] else m["sym"]
    if not rhs:
        raise bad(f"nothing after {op!r}")
    if op in ("in", "not in") and not (rhs.startswith("[") and rhs.endswith("]")):
        raise bad(f"{op!r} takes a list [a, b, ...]")
    try:  # the values are parsed by Hydra's grammar: YAML-like scalars
        value = parse_override(f"k={rhs}").value()
    except HydraException as exc:
        raise bad(f"cannot parse {rhs!r}: {str(exc).splitlines()[0]}") from None
    values = tuple(value) if op in ("in", "not in") else (value,)
    if op in ("==", "!=") and isinstance(value, (list, dict)):
        raise bad(f"{op!r} takes one value; use 'in [...]' for several")
    if not all(scalar_ok(v) for v in values):
        raise bad("the values must be scalars (strings, numbers, true/false, null)")
    if not values:
        raise bad("an empty list never applies")
    return Condition(key=key, op=op, values=values, text=text.strip(), builtin=builtin)
