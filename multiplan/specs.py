"""Layer specs and crosswalk tables: YAML -> schema check -> frozen dataclasses."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from multiplan import config
from multiplan.errors import NotFoundError, SpecError

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it: 10x faster

LAYER_IDS = ("overall", "land_use", "urban", "farmland", "forest", "ocean", "eco_redline",
             "road", "fiber", "power", "gas", "water")

_TITLE = {"type": "object", "required": ["zh", "en"], "additionalProperties": False,
          "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}
_NAMES = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_FIELD = {"type": "object", "required": ["name"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "aliases": {"type": "array", "items": {"type": "string"}}}}
_TARGET = {"type": "string", "pattern": "^[0-9]{2}([0-9]{2})?$"}
CROSSWALK_SCHEMA = {
    "type": "object", "required": ["id", "title", "rows"], "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "title": _TITLE,
        "rows": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["source", "target", "match"], "additionalProperties": False,
            "properties": {
                "source": {"type": "string"},
                "target": {"oneOf": [_TARGET, {"type": "array", "items": _TARGET, "minItems": 2}]},
                "match": {"enum": ["exact", "partial", "ambiguous"]},
                "name": {"type": "string"}, "note": {"type": "string"}}}}},
}
LAYER_SCHEMA = {
    "type": "object",
    "required": ["id", "title", "geometry", "coverage", "precision", "id_field", "admin_field",
                 "class_field", "crosswalk"],
    "additionalProperties": False,
    "properties": {
        "id": {"enum": list(LAYER_IDS)},
        "title": _TITLE,
        "geometry": {"enum": ["polygon", "line", "point"]},
        "coverage": {"type": "boolean"},
        "precision": {"enum": ["exact", "indicative"]},
        "network": {"type": "boolean"},
        "id_field": _NAMES, "admin_field": _NAMES, "status_field": _NAMES,
        "class_field": _FIELD,
        "crosswalk": {"oneOf": [{"type": "string"}, CROSSWALK_SCHEMA]},
        "zone_field": {"type": "object", "required": ["name", "values"], "additionalProperties": False,
                       "properties": {"name": {"type": "string"},
                                      "aliases": {"type": "array", "items": {"type": "string"}},
                                      "values": {"type": "object", "minProperties": 1,
                                                 "additionalProperties": _TITLE}}},
        "control_lines": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["zh", "en"], "additionalProperties": False,
            "properties": {"zh": {"type": "string"}, "en": {"type": "string"},
                           "zone": {"type": "array", "items": {"type": "string"}}}}},
        "corridor": {"type": "object", "required": ["default_m", "widths_m"], "additionalProperties": False,
                     "properties": {"default_m": {"type": "number", "exclusiveMinimum": 0},
                                    "widths_m": {"type": "object", "additionalProperties":
                                                 {"type": "number", "exclusiveMinimum": 0}}}},
    },
}


@dataclass(frozen=True)
class UnifiedClass:
    """One class of 用地用海分类."""

    code: str
    name_zh: str
    name_en: str

    @property
    def level(self) -> int:
        return 1 if len(self.code) == 2 else 2

    @property
    def first_level(self) -> str:
        return self.code[:2]

    @property
    def is_construction(self) -> bool:
        return "07" <= self.first_level <= "16"

    @property
    def is_sea(self) -> bool:
        return self.first_level in {"18", "19", "20", "21", "22", "24"}

    def name(self, lang: str = "zh") -> str:
        return self.name_en if lang == "en" else self.name_zh


@lru_cache(maxsize=1)
def unified_classes() -> dict[str, UnifiedClass]:
    """The 用地用海分类 table, keyed by code."""
    text = resources.files("multiplan").joinpath("data/ydyh_classes.csv").read_text("utf-8")
    return {row["code"]: UnifiedClass(row["code"], row["name_zh"], row["name_en"])
            for row in csv.DictReader(text.splitlines())}


@dataclass(frozen=True)
class CrosswalkRow:
    source: str
    targets: tuple[str, ...]
    match: Literal["exact", "partial", "ambiguous"]
    name: str = ""
    note: str = ""

    @property
    def unified_code(self) -> str:
        """One code for a single target; codes joined by '|' for an ambiguous mapping."""
        return "|".join(self.targets)


@dataclass(frozen=True)
class Crosswalk:
    """A many-to-one (sometimes one-to-many) table from a source scheme to 用地用海分类."""

    id: str
    title_zh: str
    title_en: str
    rows: tuple[CrosswalkRow, ...]

    def lookup(self) -> dict[str, CrosswalkRow]:
        return {row.source: row for row in self.rows}


@dataclass(frozen=True)
class ZoneField:
    name: str
    aliases: tuple[str, ...]
    values: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class Corridor:
    default_m: float
    widths_m: dict[str, float]

    def width(self, level: str | None) -> float:
        return self.widths_m.get(level or "", self.default_m)


@dataclass(frozen=True)
class LayerSpec:
    """What multiplan knows about one plan layer: how to read, classify and check it."""

    id: str
    title_zh: str
    title_en: str
    geometry: Literal["polygon", "line", "point"]
    coverage: bool
    precision: Literal["exact", "indicative"]
    network: bool
    id_fields: tuple[str, ...]
    admin_fields: tuple[str, ...]
    class_field: str
    class_aliases: tuple[str, ...]
    crosswalk: Crosswalk
    zone_field: ZoneField | None = None
    control_lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    corridor: Corridor | None = None
    status_fields: tuple[str, ...] = ()
    source: str = ""

    def title(self, lang: str = "zh") -> str:
        return self.title_en if lang == "en" else self.title_zh

    @property
    def class_candidates(self) -> tuple[str, ...]:
        return (self.class_field, *self.class_aliases)


def read_yaml(path: Path) -> Any:
    """Parse a YAML spec file safely; a read or syntax error is a :class:`SpecError` naming the file."""
    try:
        return yaml.load(path.read_text("utf-8"), Loader=_SAFE_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError("spec_invalid", file=str(path), detail=str(exc).splitlines()[0]) from exc


def check_schema(schema: dict, data: Any, path: Path) -> None:
    """Refuse ``data`` that breaks ``schema``, naming the file and the first place that is wrong."""
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "(top)"
        raise SpecError("spec_invalid", file=str(path), detail=f"{where}: {e.message}")


def _crosswalk(data: dict) -> Crosswalk:
    rows = []
    for r in data["rows"]:
        targets = tuple(r["target"]) if isinstance(r["target"], list) else (r["target"],)
        rows.append(CrosswalkRow(str(r["source"]), targets, r["match"], r.get("name", ""), r.get("note", "")))
    return Crosswalk(data["id"], data["title"]["zh"], data["title"]["en"], tuple(rows))


def identity_crosswalk() -> Crosswalk:
    """用地用海分类 codes mapped onto themselves, for plans already coded in it."""
    rows = tuple(CrosswalkRow(c.code, (c.code,), "exact", c.name_zh) for c in unified_classes().values())
    return Crosswalk("ydyh", "用地用海分类", "Land and sea use classes", rows)


def load_crosswalk(name: str, layers_dir: Path) -> Crosswalk:
    if name == "ydyh":
        return identity_crosswalk()
    path = layers_dir / "crosswalks" / f"{name}.yaml"
    if not path.exists():
        raise SpecError("spec_invalid", file=str(path), detail=f"crosswalk table {name!r} does not exist")
    data = read_yaml(path)
    check_schema(CROSSWALK_SCHEMA, data, path)
    return _crosswalk(data)


def _validate_crosswalk(cw: Crosswalk, path: Path) -> None:
    known = unified_classes()
    seen: set[str] = set()
    for row in cw.rows:
        if row.source in seen:
            raise SpecError("spec_invalid", file=str(path), detail=f"crosswalk source code {row.source!r} listed twice")
        seen.add(row.source)
        for t in row.targets:
            if t not in known:
                raise SpecError("spec_invalid", file=str(path),
                                detail=f"crosswalk target {t!r} (for {row.source!r}) is not a 用地用海分类 code")


def load_layer_spec(path: Path) -> LayerSpec:
    """Read and check one layer spec file."""
    data = read_yaml(path)
    check_schema(LAYER_SCHEMA, data, path)
    if path.stem != data["id"]:
        raise SpecError("spec_invalid", file=str(path), detail=f"id {data['id']!r} must match the file name")
    cw_data = data["crosswalk"]
    cw = load_crosswalk(cw_data, path.parent) if isinstance(cw_data, str) else _crosswalk(cw_data)
    _validate_crosswalk(cw, path)
    network = bool(data.get("network", False))
    if network != ("corridor" in data):
        raise SpecError("spec_invalid", file=str(path), detail="network layers, and only they, need a corridor table")
    zone = None
    if "zone_field" in data:
        z = data["zone_field"]
        zone = ZoneField(z["name"], tuple(z.get("aliases", ())),
                         {str(k): (v["zh"], v["en"]) for k, v in z["values"].items()})
    for name, line in data.get("control_lines", {}).items():
        unknown = set(line.get("zone", ())) - set(zone.values if zone else ())
        if unknown:
            raise SpecError("spec_invalid", file=str(path),
                            detail=f"control line {name!r} names zones {sorted(unknown)} that zone_field lacks")
    corridor = None
    if "corridor" in data:
        c = data["corridor"]
        corridor = Corridor(float(c["default_m"]), {str(k): float(v) for k, v in c["widths_m"].items()})
        missing = set(corridor.widths_m) - cw.lookup().keys()
        if missing:
            raise SpecError("spec_invalid", file=str(path), detail=f"corridor levels {sorted(missing)} are not class codes")
    cf = data["class_field"]
    return LayerSpec(
        id=data["id"], title_zh=data["title"]["zh"], title_en=data["title"]["en"],
        geometry=data["geometry"], coverage=data["coverage"], precision=data["precision"],
        network=network, id_fields=tuple(data["id_field"]), admin_fields=tuple(data["admin_field"]),
        class_field=cf["name"], class_aliases=tuple(cf.get("aliases", ())), crosswalk=cw,
        zone_field=zone, control_lines=dict(data.get("control_lines", {})), corridor=corridor,
        status_fields=tuple(data.get("status_field", ())), source=str(path),
    )


_STAMPS: dict[Path, tuple[float, tuple]] = {}
#: Spec folders are looked at again at most this often (seconds): site checks ask many times a second.
STAMP_INTERVAL_S = 1.0


def folder_stamp(folder: Path) -> tuple:
    """What identifies the spec files under ``folder`` as read: names, sizes, modification times."""
    now = time.monotonic()
    seen = _STAMPS.get(folder)
    if seen is None or now - seen[0] > STAMP_INTERVAL_S:
        stamp = tuple((str(p), st.st_size, st.st_mtime_ns) for p in sorted(folder.rglob("*.yaml"))
                      for st in (p.stat(),))
        _STAMPS[folder] = seen = (now, stamp)
    return seen[1]


_SPEC_CACHE: dict[tuple, Any] = {}


def cached(kind: str, stamp: tuple, build: Any) -> Any:
    """``build()`` once per ``stamp``: specs are read for every site check, and they rarely change."""
    key = (kind, stamp)
    if key not in _SPEC_CACHE:
        if len(_SPEC_CACHE) > 32:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[key] = build()
    return _SPEC_CACHE[key]


def load_layer_specs(layers_dir: str | Path | None = None) -> dict[str, LayerSpec]:
    """Every layer spec in ``layers_dir``, keyed by id, in the canonical order."""
    folder = Path(layers_dir or config.setting("layers_dir"))
    return dict(cached("layers", folder_stamp(folder), lambda: _load_layer_specs(folder)))


def _load_layer_specs(folder: Path) -> dict[str, LayerSpec]:
    specs = {p.stem: load_layer_spec(p) for p in sorted(folder.glob("*.yaml"))}
    missing = [lid for lid in LAYER_IDS if lid not in specs]
    if missing:
        raise SpecError("spec_invalid", file=str(folder), detail=f"no spec for layers {missing}")
    return {lid: specs[lid] for lid in LAYER_IDS}


def layer_spec(layer_id: str, layers_dir: str | Path | None = None) -> LayerSpec:
    specs = load_layer_specs(layers_dir)
    if layer_id not in specs:
        raise NotFoundError("spec_unknown_layer", layer=layer_id, layers=", ".join(specs))
    return specs[layer_id]
