"""Rule specs: one YAML per rule in conflict_rules/, validated against a schema and the layer specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiplan import config
from multiplan.errors import SpecError
from multiplan.rules.kinds import RULE_KINDS
from multiplan.specs import (
    LayerSpec,
    cached,
    check_schema,
    folder_stamp,
    load_layer_specs,
    read_yaml,
    unified_classes,
)

SEVERITIES = ("forbidden", "major", "conditional", "notice")

#: Named groups of unified classes. A feature with an ambiguous class ('07|08|…') is in a group only
#: when every one of its targets is.
GROUPS: dict[str, tuple[str, ...]] = {
    "construction": tuple(f"{i:02d}" for i in range(7, 17)),
    "non_construction": ("01", "02", "03", "04", "05", "06", "17", "18", "19", "20", "21", "22", "23", "24"),
    "agricultural": ("01", "02", "03", "04"),
    "cropland": ("01",),
    "forest": ("03",),
    "sea_use": ("18", "19", "20", "21", "22"),
}

_TEXT = {"type": "object", "required": ["zh", "en"], "additionalProperties": False,
         "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}
_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_WHERE = {"type": "object", "additionalProperties": False, "minProperties": 1,
          "properties": {"unified": _LIST, "original": _LIST, "zone": _LIST,
                         "group": {"oneOf": [{"enum": list(GROUPS)},
                                             {"type": "array", "items": {"enum": list(GROUPS)}, "minItems": 1}]}}}
_SIDE = {"type": "object", "required": ["layer"], "additionalProperties": False,
         "properties": {"layer": {"oneOf": [{"type": "string"}, _LIST]}, "where": _WHERE}}
RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "version", "title", "kind", "severity", "a", "basis", "message", "tolerance"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "version": {"type": "integer", "minimum": 1},
        "title": _TEXT, "basis": _TEXT, "message": _TEXT,
        "kind": {"type": "string"},
        "severity": {"enum": list(SEVERITIES)},
        "a": _SIDE, "b": _SIDE,
        "tolerance": {"type": "object", "additionalProperties": False, "properties": {
            "min_area_m2": {"type": "number", "minimum": 0},
            "min_width_m": {"type": "number", "minimum": 0},
            "area_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}},
        "exceptions": {"type": "array", "items": {
            "type": "object", "required": ["field", "zh", "en"], "additionalProperties": False,
            "properties": {"field": _LIST, "zh": {"type": "string"}, "en": {"type": "string"}}}},
    },
}


@dataclass(frozen=True)
class ClassFilter:
    """Which features of a layer a rule looks at: all keys must hold, any value of a key will do."""

    unified: tuple[str, ...] = ()   # prefixes of 用地用海 codes
    original: tuple[str, ...] = ()  # the plan's own codes
    zone: tuple[str, ...] = ()      # zone-field codes (规划分区, 管制区, 保护等级, 管控类别)
    groups: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ClassFilter:
        data = data or {}
        group = data.get("group", ())
        return cls(tuple(data.get("unified", ())), tuple(data.get("original", ())), tuple(data.get("zone", ())),
                   (group,) if isinstance(group, str) else tuple(group))

    @property
    def prefixes(self) -> tuple[str, ...]:
        return self.unified + tuple(p for g in self.groups for p in GROUPS[g])

    def matches_unified(self, code: str | None) -> bool:
        """True when every target of ``code`` starts with one of the filter's prefixes."""
        prefixes = self.prefixes
        if not prefixes:
            return True
        if not code:
            return False
        return all(any(t.startswith(p) for p in prefixes) for t in code.split("|"))


@dataclass(frozen=True)
class RuleSide:
    layers: tuple[str, ...]
    where: ClassFilter


@dataclass(frozen=True)
class RuleSpec:
    id: str
    version: int
    kind: str
    severity: str
    title_zh: str
    title_en: str
    a: RuleSide
    b: RuleSide | None
    basis: dict[str, str]
    message: dict[str, str]
    tolerance: dict[str, float]
    exceptions: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def title(self, lang: str = "zh") -> str:
        return self.title_en if lang == "en" else self.title_zh


def _side(data: dict[str, Any] | None) -> RuleSide | None:
    if data is None:
        return None
    layers = data["layer"]
    return RuleSide((layers,) if isinstance(layers, str) else tuple(layers), ClassFilter.from_dict(data.get("where")))


def _reference_problems(data: dict[str, Any], specs: dict[str, LayerSpec]) -> list[str]:
    problems = []
    known_unified = set(unified_classes())
    for side_name in ("a", "b"):
        side = _side(data.get(side_name))
        if side is None:
            continue
        for lid in side.layers:
            if lid not in specs:
                problems.append(f"{side_name}: unknown layer {lid!r}")
                continue
            spec = specs[lid]
            for code in side.where.original:
                if code not in spec.crosswalk.lookup():
                    problems.append(f"{side_name}: {code!r} is not a class code of layer {lid!r}")
            for code in side.where.zone:
                if spec.zone_field is None or code not in spec.zone_field.values:
                    problems.append(f"{side_name}: {code!r} is not a zone code of layer {lid!r}")
        for code in side.where.unified:
            if not any(k.startswith(code) for k in known_unified):
                problems.append(f"{side_name}: {code!r} is not a 用地用海分类 code")
    return problems


def load_rule(path: Path, specs: dict[str, LayerSpec]) -> RuleSpec:
    """Read one rule file and check it: schema, kind, kind parameters, layer and class references."""
    data = read_yaml(path)
    kind = RULE_KINDS.get(data.get("kind")) if isinstance(data, dict) else None
    schema = dict(RULE_SCHEMA)
    if kind is not None:
        schema = {**schema, "properties": {**schema["properties"], **kind.params_schema},
                  "additionalProperties": False}
    check_schema(schema, data, path)
    if kind is None:
        raise SpecError("spec_invalid", file=str(path),
                        detail=f"kind {data['kind']!r} is not registered (known: {', '.join(RULE_KINDS)})")
    if path.stem != data["id"]:
        raise SpecError("spec_invalid", file=str(path), detail=f"id {data['id']!r} must match the file name")
    if (kind.b_geometry is None) != ("b" not in data):
        raise SpecError("spec_invalid", file=str(path),
                        detail=f"a {kind.name} rule {'has no' if kind.b_geometry is None else 'needs a'} layer b")
    problems = _reference_problems(data, specs)
    for side_name, allowed in (("a", kind.a_geometry), ("b", kind.b_geometry)):
        side = _side(data.get(side_name))
        for lid in side.layers if side and allowed else ():
            if lid in specs and specs[lid].geometry not in allowed:
                problems.append(f"{side_name}: layer {lid!r} holds {specs[lid].geometry}s; a {kind.name} rule "
                                f"needs {' or '.join(allowed)}")
    if kind.check and not problems:
        problems += kind.check({**data, "a": {"layers": _side(data["a"]).layers}}, specs)
    if problems:
        raise SpecError("spec_invalid", file=str(path), detail="; ".join(problems))
    params = {k: v for k, v in data.items() if k in kind.params_schema}
    return RuleSpec(
        id=data["id"], version=data["version"], kind=kind.name, severity=data["severity"],
        title_zh=data["title"]["zh"], title_en=data["title"]["en"], a=_side(data["a"]),
        b=_side(data.get("b")), basis=data["basis"], message=data["message"], tolerance=data["tolerance"],
        exceptions=tuple(data.get("exceptions", ())), params=params, source=str(path))


def load_rules(rules_dir: str | Path | None = None, layers_dir: str | Path | None = None) -> dict[str, RuleSpec]:
    """Every rule in ``rules_dir``, keyed by id."""
    folder = Path(rules_dir or config.setting("rules_dir"))
    layers = Path(layers_dir or config.setting("layers_dir"))
    specs = load_layer_specs(layers)

    def build() -> dict[str, RuleSpec]:
        return {p.stem: load_rule(p, specs) for p in sorted(folder.glob("*.yaml")) if not p.name.startswith("_")}
    return dict(cached("rules", folder_stamp(folder) + folder_stamp(layers), build))
