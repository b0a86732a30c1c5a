"""A validator of the five schedule fields of a crontab line (minute, hour, day of month, month, day of
week): `*`, `*/n`, `a`, `a-b`, `a-b/n`, comma lists, and names for months and weekdays. Used by the deploy
tests on deploy/cron/ and the Kubernetes CronJob; tested on its own there."""
from __future__ import annotations

import re

FIELDS = [("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
          ("month", 1, 12, {m: i + 1 for i, m in enumerate(
              "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
          ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]


def cron_field_errors(text: str, name: str, low: int, high: int, names: dict[str, int]) -> list[str]:
    """Errors of one cron field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, comma lists; names for month/weekday."""
    errors = []

    def value(v: str) -> int | None:
        if v.lower() in names:
            return names[v.lower()]
        if re.fullmatch(r"\d+", v):
            n = int(v)
            return n if low <= n <= high else None
        return None

    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (re.fullmatch(r"\d+", step) and 1 <= int(step) <= high - low + 1):
            errors.append(f"{name}: bad step {item!r}")
            continue
        if base == "*":
            continue
        a, dash, b = base.partition("-")
        first, last = value(a), value(b) if dash else None
        if first is None or (dash and (last is None or last < first)):
            errors.append(f"{name}: {item!r} is not in {low}-{high}")
        elif slash and not dash:
            errors.append(f"{name}: a step needs a range or * ({item!r})")
    return errors


def cron_schedule_errors(schedule: str) -> list[str]:
    fields = schedule.split()
    if len(fields) != 5:
        return [f"{len(fields)} fields, not 5: {schedule!r}"]
    return [e for text, spec in zip(fields, FIELDS) for e in cron_field_errors(text, *spec)]
