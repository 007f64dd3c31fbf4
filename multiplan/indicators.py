"""Plan indicators as data: area floors, quotas and no-decrease checks per county, with early warnings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiplan import config
from multiplan.rules.spec import _WHERE, ClassFilter
from multiplan.specs import LAYER_IDS, check_schema, read_yaml

_TARGETS = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
SCHEMA = {"type": "object", "required": ["indicators"], "additionalProperties": False, "properties": {
    "indicators": {"type": "array", "items": {
        "type": "object", "required": ["id", "title", "layer", "per"], "additionalProperties": False,
        "properties": {"id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                       "title": {"type": "object", "required": ["zh", "en"]},
                       "layer": {"enum": list(LAYER_IDS)}, "where": _WHERE, "per": {"enum": ["county", "layer"]},
                       "at_least": _TARGETS, "at_most": _TARGETS, "no_decrease": {"type": "boolean"}},
        "anyOf": [{"required": ["at_least"]}, {"required": ["at_most"]}, {"required": ["no_decrease"]}]}}}}


@dataclass(frozen=True)
class Indicator:
    id: str
    title: dict[str, str]
    layer: str
    where: ClassFilter
    per: str
    at_least: dict[str, float]
    at_most: dict[str, float]
    no_decrease: bool

    def totals(self, report: dict[str, Any]) -> dict[str, float]:
        """Area (m²) of the selected features, per county (or for the whole layer under key '*')."""
        out: dict[str, float] = {}
        for row in report.get("area_by_county", []):
            if not self.where.matches_unified(row["code"]):
                continue
            if self.where.original and row["orig"] not in self.where.original:
                continue
            if self.where.zone and row["zone"] not in self.where.zone:
                continue
            key = (row["xzqdm"] or "?") if self.per == "county" else "*"
            out[key] = out.get(key, 0.0) + row["area_m2"]
        return out


def load_indicators(rules_dir: str | Path | None = None) -> list[Indicator]:
    path = Path(rules_dir or config.setting("rules_dir")) / "_indicators.yaml"
    if not path.exists():
        return []
    data = read_yaml(path)
    check_schema(SCHEMA, data, path)
    return [Indicator(d["id"], d["title"], d["layer"], ClassFilter.from_dict(d.get("where")), d["per"],
                      {str(k): float(v) for k, v in d.get("at_least", {}).items()},
                      {str(k): float(v) for k, v in d.get("at_most", {}).items()}, bool(d.get("no_decrease")))
            for d in data["indicators"]]


def evaluate(layer: str, report: dict[str, Any], previous: dict[str, Any] | None,
             indicators: list[Indicator]) -> list[dict[str, Any]]:
    """Warnings for a plan version's report (and the report of the version before it)."""
    warnings = []
    for ind in indicators:
        if ind.layer != layer:
            continue
        now = ind.totals(report)
        checks = [(k, t, "at_least") for k, t in ind.at_least.items()] + [(k, t, "at_most") for k, t in ind.at_most.items()]
        for key, target, how in checks:
            value = now.get(key, 0.0)
            if (how == "at_least" and value < target) or (how == "at_most" and value > target):
                warnings.append({"indicator": ind.id, "title": ind.title, "scope": key, "check": how,
                                 "value_m2": round(value, 3), "target_m2": target,
                                 "gap_m2": round(value - target, 3)})
        if ind.no_decrease and previous is not None:
            before = ind.totals(previous)
            for key, old in before.items():
                if now.get(key, 0.0) < old - 1e-6 * max(old, 1.0):
                    warnings.append({"indicator": ind.id, "title": ind.title, "scope": key, "check": "no_decrease",
                                     "value_m2": round(now.get(key, 0.0), 3), "target_m2": round(old, 3),
                                     "gap_m2": round(now.get(key, 0.0) - old, 3)})
    return warnings
