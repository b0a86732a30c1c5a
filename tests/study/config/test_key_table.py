"""docs/configuration.md's key table against the schemas (workers/config.py TrialConfig's task/model/train,
study/config/schema.py RootConfig's search/study/cluster/tracking/nightly/expect): every leaf key of the
schemas has a row, and every key a row names exists (a leaf, a section such as `train.clip`, or a config group
of conf/); the rows of the groups `task`, `search` and `experiment` name every YAML file of their folder."""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from study.config.schema import RootConfig

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "configuration.md"


def schema_keys(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, bool]]:
    """(dotted key, is a leaf) for every field of the dataclass `cls`, nested dataclasses walked; a list or
    dict of them (study.objectives, expect, search.params) is one leaf."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, kind = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield key, False
            yield from schema_keys(kind, key + ".")
        else:
            yield key, True


def table_rows() -> dict[str, str]:
    """Each key the table names (the backquoted names of a row's first cell) → that row."""
    text = DOC.read_text()
    section = text.split("## Configuration keys", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            for key in re.findall(r"`([^`]+)`", line.split("|")[1]):
                rows[key] = line
    assert len(rows) > 40, "the key table was not found"
    return rows


def groups() -> list[str]:
    return sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir() and not p.name.startswith("_"))


def test_every_schema_key_has_a_row():
    rows = table_rows()
    missing = [key for key, leaf in schema_keys(RootConfig) if leaf and key not in rows]
    assert not missing, f"keys of the schemas that docs/configuration.md's key table lacks: {missing}"


def test_every_key_a_row_names_exists():
    known = {key for key, _ in schema_keys(RootConfig)} | set(groups())
    unknown = sorted(set(table_rows()) - known)
    assert not unknown, f"docs/configuration.md's key table names keys the schemas do not have: {unknown}"


@pytest.mark.parametrize("group", ["task", "search", "experiment"])
def test_a_group_row_names_every_choice(group):
    row = table_rows()[group]
    choices = sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))
    assert choices and not [c for c in choices if not re.search(rf"\b{c}\b", row)], (group, choices, row)
