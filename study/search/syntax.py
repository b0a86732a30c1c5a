"""The pieces every part of the search grammar shares: the error that names a search key, Hydra's override
parser, and the plain forms of the values it returns."""
from __future__ import annotations

import decimal
from enum import Enum
from typing import Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from workers.config import ConfigError


class SearchError(ConfigError):
    """A bad search space: names the key (``search.params.<key>`` / ``search.conditions.<key>``), the bad
    expression or value, and what is valid; `reason` (optional) says what exactly is wrong."""

    def __init__(self, key: str, value: Any, valid: str, reason: Optional[str] = None):
        super().__init__(key, value, valid)
        self.reason = reason
        if reason:
            self.args = (f"{key}={value!r} is invalid ({reason}); valid: {valid}",)

    def __reduce__(self):   # picklable as itself: ConfigError's 4th argument is a message, here it is `reason`
        return type(self), (self.key, self.value, self.valid, self.reason)


PARSER = OverridesParser.create()


def parse_override(text: str) -> Override:
    """One override parsed by Hydra's grammar (raises Hydra's exceptions)."""
    return PARSER.parse_override(text)


def plain(value: Any) -> Any:
    """Enums as their string value; everything else as is."""
    return value.value if isinstance(value, Enum) else value


def scalar_ok(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def exact_decimal(x: float) -> decimal.Decimal:
    """A number as written (repr gives the shortest decimal that round-trips, e.g. 0.1, 1e-05)."""
    return decimal.Decimal(repr(x))
