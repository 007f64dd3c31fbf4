"""Suggested resolutions: which plan should give way, by the national priority and a local plan order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiplan import config
from multiplan.specs import LAYER_IDS, check_schema, load_layer_specs, read_yaml

PRIORITY_SCHEMA = {
    "type": "object", "required": ["control_lines", "plans"], "additionalProperties": False,
    "properties": {
        "control_lines": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "layer", "zh", "en"], "additionalProperties": False,
            "properties": {"id": {"type": "string"}, "layer": {"enum": list(LAYER_IDS)},
                           "zone": {"type": "array", "items": {"type": "string"}},
                           "zh": {"type": "string"}, "en": {"type": "string"}}}},
        "plans": {"type": "array", "items": {"enum": list(LAYER_IDS)}, "uniqueItems": True},
    },
}


@dataclass(frozen=True)
class Priority:
    """The order in which plans prevail: control lines first, then the listed plans."""

    control_lines: tuple[dict[str, Any], ...]
    plans: tuple[str, ...]

    def rank(self, layer: str, zone: str | None) -> tuple[int, str, str]:
        """(rank, zh name, en name) of a feature: lower ranks prevail."""
        for i, line in enumerate(self.control_lines):
            if line["layer"] == layer and (not line.get("zone") or zone in line["zone"]):
                return i, line["zh"], line["en"]
        specs = load_layer_specs()
        position = self.plans.index(layer) if layer in self.plans else len(self.plans)
        return len(self.control_lines) + position, specs[layer].title_zh, specs[layer].title_en

    def suggest(self, layer_a: str, zone_a: str | None, layer_b: str | None, zone_b: str | None) -> dict[str, str]:
        """Which side should give way, with the reasoning in both languages. People decide."""
        ra = self.rank(layer_a, zone_a)
        if layer_b is None:
            return {"give_way": "a", "zh": f"调整{ra[1]}", "en": f"adjust the {ra[2]}"}
        rb = self.rank(layer_b, zone_b)
        if ra[0] == rb[0]:
            return {"give_way": "review", "zh": f"{ra[1]}与{rb[1]}同级,需协调确定", "en":
                    f"the {ra[2]} and the {rb[2]} rank equally: to be coordinated"}
        win, lose, side = (rb, ra, "a") if rb[0] < ra[0] else (ra, rb, "b")
        return {"give_way": side, "zh": f"{win[1]}优先于{lose[1]},建议调整{lose[1]}",
                "en": f"the {win[2]} prevails over the {lose[2]}: adjust the {lose[2]}"}


def load_priority(rules_dir: str | Path | None = None) -> Priority:
    path = Path(rules_dir or config.setting("rules_dir")) / "_priority.yaml"
    data = read_yaml(path)
    check_schema(PRIORITY_SCHEMA, data, path)
    return Priority(tuple(data["control_lines"]), tuple(data["plans"]))
