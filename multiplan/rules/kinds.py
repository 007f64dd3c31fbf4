"""The registry of rule kinds. Built-in kinds register exactly as a custom kind would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multiplan.specs import LayerSpec


@dataclass(frozen=True)
class RuleKind:
    """What a kind of rule needs: the geometry of its layers, extra keys, and a reference check."""

    name: str
    description: str
    a_geometry: tuple[str, ...] = ("polygon",)
    b_geometry: tuple[str, ...] | None = ("polygon",)   # None: the rule has no layer B
    params_schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema of kind-specific keys
    check: Callable[[dict[str, Any], dict[str, LayerSpec]], list[str]] | None = None


RULE_KINDS: dict[str, RuleKind] = {}


def register_kind(kind: RuleKind) -> RuleKind:
    """Add a rule kind to the registry (a custom kind may replace a built-in one on purpose)."""
    RULE_KINDS[kind.name] = kind
    return kind


def _coverage_layers(rule: dict[str, Any], specs: dict[str, LayerSpec]) -> list[str]:
    return [f"layer {lid!r} is not a coverage" for lid in rule["a"]["layers"] if not specs[lid].coverage]


def _network_layers(rule: dict[str, Any], specs: dict[str, LayerSpec]) -> list[str]:
    return [f"layer {lid!r} has no corridor widths" for lid in rule["a"]["layers"] if specs[lid].corridor is None]


register_kind(RuleKind("overlap", "polygon against polygon: the area where A and B overlap"))
register_kind(RuleKind("containment", "A must lie inside B: the area of A outside B",
                       params_schema={}))
register_kind(RuleKind("corridor", "network lines buffered by their layer's corridor width against polygons: "
                       "area, length inside and crossings", a_geometry=("line",), check=_network_layers))
register_kind(RuleKind("coverage", "overlaps and gaps inside one plan", b_geometry=None, check=_coverage_layers))
register_kind(RuleKind(
    "raster", "A on raster cells past a threshold (e.g. DEM slope above 25 degrees)", b_geometry=None,
    params_schema={"raster": {"type": "object", "required": ["source", "measure", "above"],
                              "additionalProperties": False,
                              "properties": {"source": {"enum": ["dem"]},
                                             "measure": {"enum": ["slope_deg", "elevation_m"]},
                                             "above": {"type": "number"}}}}))
