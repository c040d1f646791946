"""Contract-level governance metadata (owner, classification, retention) from either flavour.

Official ODCS has no single `owner`/`classification`/`retention` key, so we read, in order:
owner — `customProperties` `owner`/`dataOwner`, else the first team member whose role contains
"owner" (v3.0 `team: [...]` or v3.1+ `team.members`), else the v3.1+ team `name`;
classification — `customProperties` `classification`/`dataClassification`, else the distinct
property classifications in document order, comma-separated;
retention — `customProperties` `retentionDays`/`retention_days`, else the `slaProperties` entry
`retention` with its `unit` (d, w, m, y) converted to days.
The flat Dativo flavour states them directly: `team.owner`, `compliance.classification`,
`compliance.retention_days`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "w": 7, "week": 7, "weeks": 7, "m": 30, "month": 30}
_UNIT_DAYS |= {"months": 30, "y": 365, "yr": 365, "year": 365, "years": 365}


def _custom(doc: dict, *names: str) -> Any:
    for entry in doc.get("customProperties") or []:
        if isinstance(entry, dict) and entry.get("property") in names:
            return entry.get("value")
    return None


def owner(doc: dict, flat: bool) -> str | None:
    """The data owner."""
    team = doc.get("team")
    if flat:
        return str(team["owner"]) if isinstance(team, dict) and team.get("owner") else None
    value = _custom(doc, "owner", "dataOwner")
    if value:
        return str(value)
    members = team if isinstance(team, list) else (team or {}).get("members") or []
    for member in members:
        if isinstance(member, dict) and "owner" in str(member.get("role", "")).lower():
            who = member.get("username") or member.get("name")
            if who:
                return str(who)
    if isinstance(team, dict) and team.get("name"):
        return str(team["name"])
    return None


def classification(doc: dict, flat: bool, field_classes: Iterable[str | None]) -> str | None:
    """The contract's classification as one string."""
    if flat:
        value = (doc.get("compliance") or {}).get("classification")
    else:
        value = _custom(doc, "classification", "dataClassification")
        if value is None:
            value = list(dict.fromkeys(c for c in field_classes if c))
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or None
    return str(value) if value not in (None, "") else None


def retention_days(doc: dict, flat: bool) -> int | None:
    """Retention in days, if the contract states one."""
    if flat:
        value = (doc.get("compliance") or {}).get("retention_days")
        return int(value) if value is not None else None
    value = _custom(doc, "retentionDays", "retention_days")
    if value is not None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    for sla in doc.get("slaProperties") or []:
        if isinstance(sla, dict) and str(sla.get("property", "")).lower() == "retention":
            unit = str(sla.get("unit") or "d").lower()
            try:
                return int(float(sla.get("value")) * _UNIT_DAYS[unit])
            except (KeyError, TypeError, ValueError):
                return None
    return None
