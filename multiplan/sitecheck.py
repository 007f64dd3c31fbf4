"""Site checks (用地合规性审查): one project site against every plan of the one map, as of a date.

The report says how much of each plan class the site covers, where it stands to each control line,
which network corridors are within reach, what every applicable rule finds, the terrain, the
conflicts it touches, and a verdict derived from the rules. It is a plain dict, the same bytes for
the same inputs (see :func:`canonical_json`), with a content hash. Storing it and rendering it are
somebody else's business.

A site stands in for the project's land: for a building project (``construction``) it is planned
construction land, so every rule whose A side is construction land applies with the site as A; for a
linear infrastructure project (``network``) it is a network corridor and the corridor rules apply.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rasterio.windows
import shapely

from multiplan.conflicts import class_mask, slope_areas, slope_degrees
from multiplan.crs import (
    SQM_PER_HA,
    SQM_PER_MU,
    STORAGE_CRS,
    ellipsoidal_area,
    geodesic_length,
    transformer,
)
from multiplan.detection import rule_set_hash
from multiplan.errors import InputError
from multiplan.io import Raster
from multiplan.overlay import SNAP_GRID_DEG, clip_to_rects, intersect_pairs, polygonal_parts
from multiplan.rules import RuleSpec, load_rules
from multiplan.rules.spec import ClassFilter
from multiplan.specs import LayerSpec, load_layer_specs, unified_classes
from multiplan.store.base import FeatureArrays, PlanStore, PlanVersion

#: Version of the report's JSON layout (multiplan/data/site_report.schema.json); bump on any incompatible change.
SCHEMA_VERSION = 1
DEFAULT_REACH_M = 500.0
PROJECT_USES = ("construction", "network")
#: Where a control line's share of the site reaches this, the site is inside it (DOMAIN.md §5).
INSIDE_RATIO = 0.9
VERDICTS = ("compliant", "conditional", "prohibited", "unknown")
#: The verdict a hit of each severity leads to; the worst one wins, and "unknown" beats all but prohibited.
VERDICT_OF_SEVERITY = {"forbidden": "prohibited", "major": "conditional", "conditional": "conditional",
                       "notice": "compliant"}
#: 符合 / 有条件 / 不符合 for the plans that decide where building may go: by class group, or by zone.
_PLANNING_LAYERS = ("overall", "urban", "land_use")
_ZONE_COMPLIANCE = {"land_use": {"010": "compliant", "020": "conditional", "030": "non_compliant",
                                 "040": "non_compliant"}}
_CONSTRUCTION = ClassFilter(groups=("construction",))
#: Sites with this many vertices have their network part computed on a second thread.
SIDE_THREAD_VERTICES = 200
_SIDE_POOL = ThreadPoolExecutor(1, thread_name_prefix="multiplan-site")
_GEOD = pyproj.Geod(ellps="GRS80")  # CGCS2000's ellipsoid, to 0.1 mm in the semi-minor axis


@dataclass(frozen=True)
class _Site:
    geometry: shapely.Geometry
    area_m2: float
    metric: pyproj.CRS          # metres for distances and buffers
    to_metric: pyproj.Transformer
    to_lonlat: pyproj.Transformer

    def project(self, geoms: np.ndarray) -> np.ndarray:
        t = self.to_metric
        return shapely.transform(geoms, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))

    def unproject(self, geoms: np.ndarray) -> np.ndarray:
        t = self.to_lonlat
        return shapely.transform(geoms, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


@dataclass
class _Layer:
    """The features of one plan version near the site, and for polygon plans each one's part inside it."""

    id: str
    geoms: np.ndarray
    key: np.ndarray
    orig: np.ndarray
    unified: np.ndarray
    zone: np.ndarray
    level: np.ndarray
    area: np.ndarray
    corridor: np.ndarray
    # polygon plans: each feature's part inside the site (None where it could not be computed), its area,
    # and the parts with the plan's own overlaps settled (disjoint, so their areas add up) and their areas
    inside: np.ndarray | None = None
    inside_area: np.ndarray | None = None
    settled: np.ndarray | None = None
    settled_area: np.ndarray | None = None

    @classmethod
    def of(cls, layer: str, arrays: FeatureArrays) -> _Layer:
        return cls(layer, arrays.geoms, arrays.key, arrays.orig, arrays.unified, arrays.zone, arrays.level,
                   arrays.area, arrays.corridor)

    def take(self, mask: np.ndarray) -> _Layer:
        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[mask]

        return _Layer(self.id, *(a[mask] for a in (self.geoms, self.key, self.orig, self.unified, self.zone,
                                                   self.level, self.area, self.corridor)),
                      inside=part(self.inside), inside_area=part(self.inside_area), settled=part(self.settled),
                      settled_area=part(self.settled_area))

    def settled_total(self) -> float | None:
        """The area inside the site of the union of these features; None when a part could not be computed."""
        assert self.settled is not None and self.settled_area is not None
        if any(p is None for p in self.settled):
            return None
        return float(self.settled_area.sum())

    def where(self, where: ClassFilter) -> _Layer:
        return self.take(class_mask(self.unified, self.orig, self.zone, where))


def versions_as_of(store: PlanStore, as_of: str | None = None) -> dict[str, PlanVersion]:
    """The version of each layer that was current at the end of day ``as_of`` (YYYY-MM-DD); now if None."""
    chosen: dict[str, PlanVersion] = {}
    for v in store.versions():
        if as_of is None or v.loaded_at[:10] <= as_of:
            if v.layer not in chosen or v.version > chosen[v.layer].version:
                chosen[v.layer] = v
    return chosen


def _site(geometry: shapely.Geometry) -> _Site:
    if geometry is None or geometry.is_empty or shapely.get_type_id(geometry) not in (3, 6):
        raise InputError("site_not_polygon", got=getattr(geometry, "geom_type", "None"))
    if not shapely.is_valid(geometry):  # read_site repairs what can be repaired; a raw polygon must be valid
        raise InputError("site_invalid", reason=shapely.is_valid_reason(geometry))
    # the 3-degree Gauss-Kruger zone, as the conflict engine buffers corridors: distances are then measured
    # on the ellipsoid between the nearest points found there
    epsg = 4546 if shapely.centroid(geometry).x >= 109.5 else 4545
    shapely.prepare(geometry)  # here, once: the parts of a check that run on two threads both test against it
    to_metric, to_lonlat = transformer(STORAGE_CRS, epsg), transformer(epsg, STORAGE_CRS)
    return _Site(geometry, float(ellipsoidal_area(np.array([geometry]))[0]), to_metric.target_crs,
                 to_metric, to_lonlat)


def _robust(op: Callable, a: Any, b: Any) -> Any:
    """``op`` at full precision, else on the 1 mm grid, else None (the caller reports "unknown")."""
    try:
        return op(a, b)
    except shapely.errors.GEOSException:
        try:
            return op(a, b, grid_size=SNAP_GRID_DEG)
        except shapely.errors.GEOSException:
            return None


def _polygonal(geom: shapely.Geometry | None) -> shapely.Geometry:
    """One overlay result as a multipolygon of its polygonal parts; None (not computed) as an empty one."""
    return shapely.MultiPolygon() if geom is None else polygonal_parts(np.array([geom], dtype=object))[0]


def _area(geom: shapely.Geometry | None) -> float:
    return 0.0 if geom is None or geom.is_empty else float(ellipsoidal_area(np.array([geom]))[0])


def _m2(value: float) -> float:
    return round(float(value), 4)


def _pct(part: float, whole: float) -> float:
    # a part measured apart from its whole can exceed it by rounding (1e-9 relative): a share is at most 100
    return round(min(100.0 * part / whole, 100.0), 6) if whole > 0 else 0.0


def _areas(value: float) -> dict[str, float]:
    return {"area_m2": _m2(value), "area_ha": round(value / SQM_PER_HA, 8), "area_mu": round(value / SQM_PER_MU, 6)}


def _reach_bbox(site: _Site, reach_m: float) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = shapely.bounds(site.geometry)
    dlat = reach_m / 110_000.0 * 1.1
    dlon = reach_m / (111_320.0 * math.cos(math.radians(max(abs(miny), abs(maxy))))) * 1.1
    return (minx - dlon, miny - dlat, maxx + dlon, maxy + dlat)


def _class_name(spec: LayerSpec, orig: str | None, unified: str | None, names: dict[str, tuple[str, str]]
                ) -> dict[str, str]:
    row = spec.crosswalk.lookup().get(orig or "") if orig else None
    first = (unified or "").split("|")[0]
    zh, en = names.get(first, ("", ""))
    if row is not None and row.name:
        return {"zh": row.name, "en": en or row.name}
    return {"zh": zh or (orig or ""), "en": en or (orig or "")}


def _clip(site: _Site, geoms: np.ndarray) -> np.ndarray:
    """Each feature's part inside the site, polygonal; None where GEOS could not compute it."""
    clipped = np.empty(len(geoms), dtype=object)
    # whole features inside the site, and features covering all of it, need no overlay (the site was
    # prepared in _site)
    within = shapely.contains(site.geometry, geoms)
    clipped[within] = geoms[within]
    rest = np.flatnonzero(~within)
    covering = shapely.covers(geoms[rest], site.geometry)
    clipped[rest[covering]] = site.geometry
    rest = rest[~covering]
    # a big site is clipped around each small feature first (and a big feature around the site)
    clipped[rest] = intersect_pairs(geoms[rest], np.full(len(rest), site.geometry, dtype=object))[0]
    types = shapely.get_type_id(clipped)
    mixed = (types != -1) & (types != 3) & (types != 6)  # collections, lines: keep the polygons
    clipped[mixed] = polygonal_parts(clipped[mixed])
    return clipped


def _union_inside(chosen: list[_Layer]) -> shapely.Geometry | None:
    """The union of the chosen features' parts inside the site, over several plans; None when a part
    could not be computed."""
    parts = np.concatenate([c.inside for c in chosen if c.inside is not None] or [np.zeros(0, dtype=object)])
    if any(p is None for p in parts):
        return None
    parts = parts[~shapely.is_empty(parts)]
    if len(parts) <= 1:
        return parts[0] if len(parts) else shapely.MultiPolygon()
    return _robust(lambda a, b, **kw: shapely.union_all(a, **kw), parts, None)


def _cut_by_site(site: _Site, plans: list[_Layer]) -> list[_Layer]:
    """The features of each polygon plan that meet the site, with their parts inside it: all plans in
    one go, as the cost is mostly per call."""
    if not plans:
        return []
    geoms = np.concatenate([plan.geoms for plan in plans])
    meets = shapely.intersects(site.geometry, geoms)
    inside = _clip(site, geoms[meets])
    out = []
    at, done = 0, 0
    for plan in plans:
        kept = plan.take(meets[at:at + len(plan.geoms)])
        at += len(plan.geoms)
        kept.inside = inside[done:done + len(kept.geoms)]
        done += len(kept.geoms)
        out.append(kept)
    return out


def _settle_overlaps(layer: _Layer) -> tuple[np.ndarray, list[dict]]:
    """The features' parts inside the site where a plan's own polygons overlap: the first feature (by
    feature number) keeps the area, so the shares of one plan add up to its cover of the site. Without
    such overlaps, the parts themselves."""
    assert layer.inside is not None
    pieces = layer.inside
    ok = np.array([p is not None for p in pieces], dtype=bool)
    unknown = [{"layer": layer.id, "feature": str(k), "reason": "geometry_failed"} for k in layer.key[~ok]]
    # in-plan overlaps are rare (a data error caught at load): only then settle them piece by piece. Parts
    # overlap only where their whole features do, and those are tested on their own few vertices (the
    # parts carry the site's; and the parts of neighbours, each cut by the site apart, may overlap by
    # rounding alone)
    left, right = shapely.STRtree(layer.geoms).query(layer.geoms, predicate="intersects")
    pairs = (left < right) & ok[left] & ok[right]
    if pairs.any() and shapely.relate_pattern(layer.geoms[left[pairs]], layer.geoms[right[pairs]],
                                              "2********").any():
        pieces = pieces.copy()
        covered = shapely.MultiPolygon()
        for i in np.flatnonzero(ok):
            piece = _robust(shapely.difference, pieces[i], covered)
            if piece is None:
                unknown.append({"layer": layer.id, "feature": str(layer.key[i]), "reason": "geometry_failed"})
                pieces[i] = None
                continue
            pieces[i] = _polygonal(piece)
            covered = _polygonal(_robust(shapely.union, covered, pieces[i]))
    return pieces, unknown


def _measure_inside(plans: list[_Layer]) -> list[dict]:
    """Settle each polygon plan's own overlaps inside the site and measure every part: one area
    computation for all plans (its cost is mostly per call). Returns the parts that could not be computed."""
    unknown: list[dict] = []
    batch: list[np.ndarray] = []
    for plan in plans:
        plan.settled, failed = _settle_overlaps(plan)
        unknown += failed
        batch.append(plan.settled)
        if plan.settled is not plan.inside:
            batch.append(plan.inside)
    pieces = np.concatenate(batch) if batch else np.zeros(0, dtype=object)
    pieces = np.where([p is None for p in pieces], shapely.MultiPolygon(), pieces)
    areas = ellipsoidal_area(pieces) if len(pieces) else np.zeros(0)
    at = 0
    for plan in plans:
        plan.settled_area = areas[at:at + len(plan.geoms)]
        at += len(plan.geoms)
        if plan.settled is plan.inside:
            plan.inside_area = plan.settled_area
        else:
            plan.inside_area = areas[at:at + len(plan.geoms)]
            at += len(plan.geoms)
    return unknown


def _layer_overlaps(site: _Site, plan: _Layer, spec: LayerSpec,
                    names: dict[str, tuple[str, str]]) -> tuple[list[dict], dict]:
    """Per class of one polygon plan: the site's area in it; the shares of one plan add up to its cover."""
    layer = plan.id
    areas = plan.settled_area
    assert areas is not None
    groups: dict[tuple, dict[str, Any]] = {}
    columns = (plan.orig, plan.unified, plan.zone, plan.key)
    patch_areas = plan.area
    for i in np.flatnonzero(areas > 0):
        key = (columns[0][i], columns[1][i], columns[2][i])
        group = groups.setdefault(key, {"area": 0.0, "features": set(), "patch_area": 0.0})
        group["area"] += float(areas[i])
        if columns[3][i] not in group["features"]:
            group["features"].add(columns[3][i])
            group["patch_area"] += float(patch_areas[i])
    rows = []
    for (orig, unified, zone), g in sorted(groups.items(), key=lambda kv: (-kv[1]["area"], str(kv[0]))):
        zone_name = spec.zone_field.values.get(zone) if spec.zone_field and zone else None
        rows.append({"layer": layer, "class_code": orig, "unified_code": unified,
                     "class_name": _class_name(spec, orig, unified, names), "zone_code": zone,
                     "zone_name": {"zh": zone_name[0], "en": zone_name[1]} if zone_name else None,
                     **_areas(g["area"]), "site_percent": _pct(g["area"], site.area_m2),
                     "patch_percent": _pct(g["area"], g["patch_area"]), "features": len(g["features"])})
    cover = sum(g["area"] for g in groups.values())
    summary = {"layer": layer, "title": {"zh": spec.title_zh, "en": spec.title_en}, "status": "checked",
               "covered_m2": _m2(cover), "covered_percent": _pct(cover, site.area_m2),
               "uncovered_m2": _m2(max(site.area_m2 - cover, 0.0)),
               "uncovered_percent": _pct(max(site.area_m2 - cover, 0.0), site.area_m2)}
    return rows, summary


def _compliance(layer: str, overlaps: list[dict], site: _Site) -> dict[str, Any]:
    """符合 / 有条件 / 不符合 / 未覆盖 areas of a planning layer for a building project."""
    totals = {"compliant": 0.0, "conditional": 0.0, "non_compliant": 0.0}
    by_zone = _ZONE_COMPLIANCE.get(layer, {})
    for row in overlaps:
        if by_zone and row["zone_code"] in by_zone:
            kind = by_zone[row["zone_code"]]
        else:
            kind = "compliant" if _CONSTRUCTION.matches_unified(row["unified_code"]) else "non_compliant"
        totals[kind] += row["area_m2"]
    uncovered = max(site.area_m2 - sum(totals.values()), 0.0)
    return {"layer": layer, **{f"{k}_m2": _m2(v) for k, v in totals.items()}, "uncovered_m2": _m2(uncovered),
            **{f"{k}_percent": _pct(v, site.area_m2) for k, v in totals.items()}}


def _control_lines(site: _Site, specs: dict[str, LayerSpec], plans: dict[str, _Layer],
                   missing: set[str]) -> list[dict]:
    out = []
    for layer, spec in sorted(specs.items()):
        for line_id, line in sorted(spec.control_lines.items()):
            entry = {"id": line_id, "layer": layer, "name": {"zh": line["zh"], "en": line["en"]}}
            if layer in missing:
                out.append({**entry, "position": "unknown", "reason": "layer_missing", "inside_m2": None,
                            "inside_percent": None})
                continue
            plan = plans[layer]
            area = (plan.where(ClassFilter(zone=tuple(line["zone"]))) if line.get("zone") else plan).settled_total()
            if area is None:
                out.append({**entry, "position": "unknown", "reason": "geometry_failed", "inside_m2": None,
                            "inside_percent": None})
                continue
            share = area / site.area_m2 if site.area_m2 else 0.0
            position = "inside" if share >= INSIDE_RATIO else ("outside" if area <= 0 else "both")
            out.append({**entry, "position": position, "inside_m2": _m2(area), "inside_percent": _pct(area, site.area_m2),
                        "outside_m2": _m2(max(site.area_m2 - area, 0.0)), "inside_ratio": INSIDE_RATIO})
    return out


def _degrees(metres: float, near: shapely.Geometry) -> float:
    """A distance in metres as degrees near ``near``, generously: a degree of longitude is the shorter one."""
    max_lat = float(np.abs(shapely.bounds(near)[[1, 3]]).max())
    return metres / (111_320.0 * math.cos(math.radians(max_lat)))


def _networks(site: _Site, layers: list[tuple[_Layer, LayerSpec]], reach_m: float) -> list[dict]:
    """Network lines within ``reach_m`` of the site: geodesic distance, length inside, corridor area inside.
    Every network layer in one pass: the cost is per call far more than per line."""
    layers = [(plan, spec) for plan, spec in layers if len(plan.geoms)]
    if not layers:
        return []
    geoms = np.concatenate([plan.geoms for plan, _ in layers])
    owner = np.repeat(np.arange(len(layers)), [len(plan.geoms) for plan, _ in layers])
    row = np.concatenate([np.arange(len(plan.geoms)) for plan, _ in layers])
    all_widths = np.nan_to_num(np.concatenate([plan.corridor for plan, _ in layers]).astype(float), nan=0.0)
    # this may run on a second thread beside the polygon plans: GEOS builds a prepared geometry's indexes
    # lazily and not thread-safely, so this thread tests against its own copy of the site
    own_site = shapely.from_wkb(shapely.to_wkb(site.geometry))
    shapely.prepare(own_site)  # the first argument is the prepared one
    candidates = np.flatnonzero(shapely.dwithin(own_site, geoms, _degrees(reach_m, own_site) * 1.02))
    if not len(candidates):
        return []
    # distances within reach, the length inside and the corridor inside all lie near the site: a 7 km line
    # is clipped to a box that holds every point within reach (and half a corridor) of the site first
    margin = _degrees(max(reach_m, float(all_widths[candidates].max()) / 2), own_site) * 1.1
    x0, y0, x1, y1 = shapely.bounds(own_site)
    near_lines = shapely.clip_by_rect(geoms[candidates], x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    metric_site = site.project(np.array([own_site]))[0]
    # segments are straight in lon/lat as stored: densify so they keep that shape in metres
    metric_lines = site.project(shapely.segmentize(near_lines, 0.0005))
    keep = shapely.distance(metric_lines, metric_site) <= reach_m  # NaN (nothing left in the box) is out
    near = candidates[keep]
    if not len(near):
        return []
    lines, metric = near_lines[keep], metric_lines[keep]
    touches = shapely.intersects(lines, own_site)
    # the nearest points are found in metres; their distance is measured on the ellipsoid
    ends = shapely.get_coordinates(site.unproject(shapely.shortest_line(metric, metric_site)))
    _, _, distance = _GEOD.inv(ends[0::2, 0], ends[0::2, 1], ends[1::2, 0], ends[1::2, 1])
    distance = np.where(touches, 0.0, distance)
    inside = np.full(len(lines), None, dtype=object)
    inside[touches] = intersect_pairs(lines[touches], np.full(int(touches.sum()), own_site, dtype=object))[0]
    lengths = geodesic_length(np.array([g if g is not None else shapely.LineString() for g in inside], dtype=object))
    widths = all_widths[near]
    corridor_area = np.zeros(len(near))
    wide = widths > 0
    if wide.any():
        # a corridor meets the site only where its line comes within half its width: clip the line there
        x0, y0, x1, y1 = shapely.bounds(metric_site)
        half = widths[wide] / 2
        pad = half * 1.01 + 1.0
        axes = clip_to_rects(metric[wide], x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        reaching = ~shapely.is_empty(axes)
        corridors = site.unproject(shapely.buffer(axes[reaching], half[reaching]))
        parts = polygonal_parts(intersect_pairs(corridors, np.full(len(corridors), own_site, dtype=object))[0])
        parts[[p is None for p in parts]] = shapely.MultiPolygon()  # not computed: no area claimed
        corridor_area[np.flatnonzero(wide)[reaching]] = ellipsoidal_area(parts) if len(parts) else 0.0
    out = []
    for k, (layer, i) in enumerate(zip(owner[near].tolist(), row[near].tolist(), strict=True)):
        plan, spec = layers[layer]
        out.append({"layer": plan.id, "title": {"zh": spec.title_zh, "en": spec.title_en},
                    "feature": str(plan.key[i]), "class_code": plan.orig[i], "level": plan.level[i],
                    "corridor_m": round(float(widths[k]), 3), "distance_m": round(float(distance[k]), 4),
                    "length_inside_m": round(float(lengths[k]), 4), "corridor_area_m2": _m2(corridor_area[k]),
                    "in_corridor": bool(corridor_area[k] > 0)})
    return sorted(out, key=lambda r: (r["layer"], r["distance_m"], r["feature"]))


def _applies(rule: RuleSpec, use: str, specs: dict[str, LayerSpec]) -> bool:
    """Whether the site stands in for the rule's A side."""
    if rule.b is None and rule.kind != "raster":
        return False
    if use == "network":
        return rule.kind == "corridor"
    # rules on planned construction land in general (the master plan among its A layers); rules comparing
    # one named plan with another (两规差异, the urban boundary of the urban plan) stay plan-to-plan
    return (rule.kind in ("overlap", "containment", "raster") and "overall" in rule.a.layers
            and set(rule.a.layers) <= set(_PLANNING_LAYERS) and "construction" in rule.a.where.groups)


def _crop(raster: Raster, bounds: tuple[float, float, float, float], pad: int = 2, window_only: bool = False,
          shape: tuple[int, int] | None = None) -> Any:
    """The part of ``raster`` over ``bounds`` (raster CRS) plus ``pad`` cells, or None when outside it
    (with ``window_only``, just its row and column ranges)."""
    window = rasterio.windows.from_bounds(*bounds, transform=raster.transform)
    rows, cols = shape or raster.values.shape
    r0 = max(int(math.floor(window.row_off)) - pad, 0)
    c0 = max(int(math.floor(window.col_off)) - pad, 0)
    r1 = min(int(math.ceil(window.row_off + window.height)) + pad, rows)
    c1 = min(int(math.ceil(window.col_off + window.width)) + pad, cols)
    if r0 >= r1 or c0 >= c1:
        return None
    if window_only:
        return (r0, r1), (c0, c1)
    return Raster(raster.values[r0:r1, c0:c1], raster.transform @ raster.transform.translation(c0, r0), raster.crs)


_DATASETS = threading.local()  # open rasters per thread: opening a GeoTIFF costs more than reading a window


@dataclass(frozen=True)
class _OpenRaster:
    key: tuple[str, int]
    src: Any                      # the rasterio dataset
    crs: pyproj.CRS
    to_raster: pyproj.Transformer  # EPSG:4490 to the raster's CRS


def _dataset(path: str | Path) -> _OpenRaster:
    import rasterio

    key = (str(path), Path(path).stat().st_mtime_ns)
    cache = getattr(_DATASETS, "open", None)
    if cache is None or cache.key != key:
        if cache is not None:
            cache.src.close()
        src = rasterio.open(path)
        crs = pyproj.CRS.from_user_input(src.crs.to_wkt())
        _DATASETS.open = cache = _OpenRaster(key, src, crs, transformer(STORAGE_CRS, crs))
    return cache


def _read_window(path: str | Path, site: _Site) -> tuple[Raster | None, shapely.Geometry]:
    """Only the DEM cells around the site (plus a margin for the slope), read from the file; and the
    site in the raster's CRS."""
    import rasterio

    try:
        dataset = _dataset(path)
        src, crs = dataset.src, dataset.crs
        in_raster = _transformed(site.geometry, dataset.to_raster)
        bounds = shapely.bounds(in_raster)
        whole = Raster(np.empty((0, 0)), src.transform, crs)
        window = _crop(whole, bounds, pad=3, window_only=True, shape=(src.height, src.width))
        if window is None:
            return None, in_raster
        (r0, r1), (c0, c1) = window
        band = src.read(1, window=rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)).astype("float64")
        if src.nodata is not None:
            band[band == src.nodata] = np.nan
        return Raster(band, src.transform @ src.transform.translation(c0, r0), crs), in_raster
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise InputError("read_failed", file=Path(path).name, detail=str(exc)) from exc


def _transformed(geometry: shapely.Geometry, t: pyproj.Transformer) -> shapely.Geometry:
    return shapely.transform(geometry, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def _to_crs(geometry: shapely.Geometry, crs: pyproj.CRS) -> shapely.Geometry:
    return _transformed(geometry, transformer(STORAGE_CRS, crs))


def _cells_under(geometry: shapely.Geometry, shape: tuple[int, int], transform: Any) -> np.ndarray:
    """The cells whose centre lies in ``geometry`` (as GDAL burns a polygon), or when there are none (a site
    smaller than a cell) the cells it touches. A small window: point tests beat a call into GDAL."""
    rows, cols = shape
    col, row = np.meshgrid(np.arange(cols, dtype=float), np.arange(rows, dtype=float))

    def xy(c: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = transform
        return t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f

    x, y = xy(col + 0.5, row + 0.5)
    shapely.prepare(geometry)
    mask = shapely.intersects_xy(geometry, x, y)
    if not mask.any():
        corners = [xy(col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1))]
        rings = np.stack([np.stack(c, axis=-1) for c in corners], axis=-2).reshape(-1, 4, 2)
        mask = shapely.intersects(geometry, shapely.polygons(rings)).reshape(shape)
    return mask


def _terrain(site: _Site, dem: Raster | str | Path | None) -> tuple[dict[str, Any], Raster | None]:
    if dem is None:
        return {"status": "unknown", "reason": "no_dem"}, None
    if isinstance(dem, Raster):
        in_raster = _to_crs(site.geometry, dem.crs)
        window = _crop(dem, shapely.bounds(in_raster))
    else:
        window, in_raster = _read_window(dem, site)
    if window is None:
        return {"status": "unknown", "reason": "outside_dem"}, None
    mask = _cells_under(in_raster, window.values.shape, window.transform)
    elevation = window.values[mask]
    slope = slope_degrees(window)[mask]
    valid = np.isfinite(elevation) & np.isfinite(slope)
    if not valid.any() or valid.mean() < 0.5:
        return {"status": "unknown", "reason": "dem_no_data", "cells": int(mask.sum())}, window
    elevation, slope = elevation[valid], slope[valid]
    return {"status": "checked", "cells": int(valid.sum()), "cell_size": round(abs(window.transform.a), 6),
            "elevation_min_m": round(float(elevation.min()), 3), "elevation_max_m": round(float(elevation.max()), 3),
            "elevation_mean_m": round(float(elevation.mean()), 3), "slope_mean_deg": round(float(slope.mean()), 3),
            "slope_max_deg": round(float(slope.max()), 3),
            "slope_over_15_percent": round(100.0 * float((slope > 15).mean()), 4),
            "slope_over_25_percent": round(100.0 * float((slope > 25).mean()), 4),
            "no_data_percent": round(100.0 * (1 - float(valid.mean())), 4)}, window


def _rule_finding(rule: RuleSpec, site: _Site, plans: dict[str, _Layer], missing: set[str],
                  dem_window: Raster | None, dem_status: str) -> dict[str, Any]:
    base = {"rule": rule.id, "rule_version": rule.version, "kind": rule.kind, "severity": rule.severity,
            "title": {"zh": rule.title_zh, "en": rule.title_en}, "basis": rule.basis, "message": rule.message,
            "tolerance": rule.tolerance}
    if rule.kind == "raster":
        if dem_window is None or dem_status != "checked":
            return {**base, "status": "unknown", "reason": "no_dem", "area_m2": None}
        params = rule.params["raster"]
        steep = slope_areas(dem_window, float(params["above"]))
        constraint = shapely.union_all(steep) if len(steep) else shapely.MultiPolygon()
        layers: tuple[str, ...] = ()
    else:
        assert rule.b is not None
        layers = rule.b.layers
        absent = [lid for lid in layers if lid in missing]
        if absent:
            return {**base, "status": "unknown", "reason": "layer_missing", "layers": absent, "area_m2": None}
        chosen = [plans[lid].where(rule.b.where) for lid in layers]
        constraint = _union_inside(chosen) if rule.kind == "containment" or len(chosen) > 1 else None
    if rule.kind in ("overlap", "corridor") and len(layers) == 1:
        # one plan's settled parts inside the site are disjoint: their areas add up to their union's
        area = chosen[0].settled_total()
        if area is None:
            return {**base, "status": "unknown", "reason": "geometry_failed", "area_m2": None}
    else:
        if constraint is None:
            return {**base, "status": "unknown", "reason": "geometry_failed", "area_m2": None}
        if rule.kind == "containment":
            piece = _robust(shapely.difference, site.geometry, constraint)
        elif rule.kind == "raster":
            piece = _robust(shapely.intersection, site.geometry, constraint)
        else:  # the parts were clipped to the site already
            piece = constraint
        if piece is None:
            return {**base, "status": "unknown", "reason": "geometry_failed", "area_m2": None}
        area = _area(_polygonal(piece)) if not piece.is_empty else 0.0
    features = []
    if rule.kind in ("overlap", "corridor") and area > 0:
        for lid, c in zip(layers, chosen, strict=True):
            assert c.inside_area is not None
            features += [f"{lid}:{k}" for k, a in zip(c.key, c.inside_area, strict=True) if a > 0]
    min_area = float(rule.tolerance.get("min_area_m2", 0.0))
    status = "hit" if area >= min_area and area > 0 else ("suppressed" if area > 0 else "clear")
    return {**base, "status": status, "area_m2": _m2(area), "site_percent": _pct(area, site.area_m2),
            "features": sorted(features)}


def _conflicts(store: PlanStore, site: _Site) -> tuple[list[dict], int | None]:
    run_id = store.latest_run_id()
    if run_id is None:
        return [], None
    patches = store.read_patches(run_id, bbox=shapely.bounds(site.geometry))
    if patches.empty:
        return [], run_id
    hit = patches[shapely.intersects(patches.geometry.values, site.geometry)]
    cases = {cid: c for cid in set(hit["conflict_id"]) for c in store.conflicts(conflict_id=cid)}
    areas: dict[str, float] = {}
    first: dict[str, Any] = {}
    for row, geom in zip(hit.itertuples(index=False), hit.geometry.values, strict=True):
        inside = _robust(shapely.intersection, geom, site.geometry)
        areas[row.conflict_id] = areas.get(row.conflict_id, 0.0) + _area(_polygonal(inside))
        first.setdefault(row.conflict_id, row)
    out = []
    for cid in sorted(areas):
        row = first[cid]
        out.append({"conflict_id": cid, "rule": row.rule, "severity": row.severity, "layer_a": row.layer_a,
                    "feature_a": row.feature_a, "layer_b": row.layer_b, "feature_b": row.feature_b,
                    "status": cases.get(cid, {}).get("status"), "area_in_site_m2": _m2(areas[cid])})
    return out, run_id


def _verdict(findings: list[dict]) -> tuple[str, list[str]]:
    """The worst outcome of the rules; a rule that could not be computed makes the verdict unknown
    unless another rule already prohibits the project."""
    hits = [f for f in findings if f["status"] == "hit"]
    unknown = [f["rule"] for f in findings if f["status"] == "unknown"]
    outcomes = {VERDICT_OF_SEVERITY[f["severity"]] for f in hits}
    if "prohibited" in outcomes:
        return "prohibited", sorted(f["rule"] for f in hits if VERDICT_OF_SEVERITY[f["severity"]] == "prohibited")
    if unknown:
        return "unknown", sorted(unknown)
    if "conditional" in outcomes:
        return "conditional", sorted(f["rule"] for f in hits if VERDICT_OF_SEVERITY[f["severity"]] == "conditional")
    return "compliant", []


def _site_geojson(geometry: shapely.Geometry) -> dict[str, Any]:
    # coordinates rounded to 1e-9° (0.1 mm) for stable bytes; no overlay, so nothing can fail here
    return json.loads(shapely.to_geojson(shapely.transform(geometry, lambda c: np.round(c, 9))))


def check_site(site: Any, store: PlanStore, as_of: str | None = None,
               rasters: dict[str, str | Path | Raster] | None = None, project_use: str = "construction",
               reach_m: float = DEFAULT_REACH_M) -> dict[str, Any]:
    """Check a site (a :class:`multiplan.sites.SiteInput` or a polygon in EPSG:4490) against the plans."""
    if project_use not in PROJECT_USES:
        raise InputError("site_bad_use", use=project_use, uses=", ".join(PROJECT_USES))
    with store.one_connection():  # its three reads share one connection
        return _check_site(site, store, as_of, rasters, project_use, reach_m)


def _check_site(site: Any, store: PlanStore, as_of: str | None, rasters: dict[str, str | Path | Raster] | None,
                project_use: str, reach_m: float) -> dict[str, Any]:
    geometry = getattr(site, "geometry", site)
    s = _site(geometry)
    specs = load_layer_specs()
    names = {c: (u.name_zh, u.name_en) for c, u in unified_classes().items()}
    versions = versions_as_of(store, as_of)
    bbox = _reach_bbox(s, reach_m)
    plans: dict[str, _Layer] = {}
    missing = {lid for lid in specs if lid not in versions}
    # networks are wanted within reach; polygon plans only where they meet the site
    site_box = tuple(shapely.bounds(s.geometry))
    near = store.features_near({lid: v.version for lid, v in versions.items()}, bbox,
                               {lid: site_box for lid in versions if specs[lid].geometry == "polygon"})
    for lid in sorted(versions):
        plans[lid] = _Layer.of(lid, near[lid])
    network_plans = [(plans[lid], spec) for lid, spec in sorted(specs.items()) if spec.network and lid in plans]
    # a big site keeps GEOS busy on both sides: the networks run beside the polygon plans (GEOS releases the GIL)
    side = (_SIDE_POOL.submit(_networks, s, network_plans, reach_m)
            if shapely.get_num_coordinates(s.geometry) >= SIDE_THREAD_VERTICES else None)
    polygon_plans = _cut_by_site(s, [plans[lid] for lid in sorted(plans) if specs[lid].geometry == "polygon"])
    plans.update({plan.id: plan for plan in polygon_plans})
    unknown = _measure_inside(polygon_plans)

    overlaps, layers = [], []
    for lid, spec in sorted(specs.items()):
        if spec.geometry != "polygon":
            continue
        if lid in missing:
            layers.append({"layer": lid, "title": {"zh": spec.title_zh, "en": spec.title_en}, "status": "missing"})
            continue
        rows, summary = _layer_overlaps(s, plans[lid], spec, names)
        overlaps += rows
        layers.append(summary)
    compliance = [_compliance(lid, [r for r in overlaps if r["layer"] == lid], s)
                  for lid in _PLANNING_LAYERS if lid not in missing]
    terrain, dem_window = _terrain(s, (rasters or {}).get("dem"))
    networks = side.result() if side is not None else _networks(s, network_plans, reach_m)

    rules = load_rules()
    findings = [_rule_finding(rule, s, plans, missing, dem_window, terrain["status"])
                for _, rule in sorted(rules.items()) if _applies(rule, project_use, specs)]
    conflicts, run_id = _conflicts(store, s)
    verdict, because = _verdict(findings)
    suppressed = [f for f in findings if f["status"] == "suppressed"]
    report = {
        "schema_version": SCHEMA_VERSION,
        "site": {**_areas(s.area_m2), "bbox": [round(v, 9) for v in shapely.bounds(s.geometry)],
                 "parts": len(shapely.get_parts(s.geometry)), "geometry": _site_geojson(s.geometry),
                 "source": getattr(site, "source_name", None), "input_crs": getattr(site, "crs", None),
                 "input_crs_guessed": getattr(site, "crs_guessed", None)},
        "project_use": project_use, "as_of": as_of, "reach_m": reach_m,
        "plan_versions": {lid: {"version": v.version, "label": v.label, "loaded_at": v.loaded_at,
                                "source_sha256": v.source_sha256} for lid, v in sorted(versions.items())},
        "missing_layers": sorted(missing),
        "rule_set_sha256": rule_set_hash(rules), "detection_run": run_id,
        "layers": layers, "overlaps": overlaps, "compliance": compliance,
        "control_lines": _control_lines(s, specs, plans, missing),
        "networks": networks, "terrain": terrain,
        "findings": [f for f in findings if f["status"] in ("hit", "unknown")],
        "rules_applied": [{"rule": f["rule"], "status": f["status"], "area_m2": f["area_m2"]} for f in findings],
        "slivers": {"count": len(suppressed), "area_m2": _m2(sum(f["area_m2"] for f in suppressed)),
                    "rules": [f["rule"] for f in suppressed]},
        "conflicts": conflicts, "unknown": unknown,
        "verdict": "unknown" if unknown and verdict != "prohibited" else verdict,
        "verdict_rules": because,
    }
    return _sealed(report)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report (multiplan/data/site_report.schema.json), versioned by SCHEMA_VERSION."""
    from importlib import resources

    return json.loads(resources.files("multiplan").joinpath("data/site_report.schema.json").read_text("utf-8"))


class SiteReport(dict):
    """A report as :func:`check_site` returns it: a plain dict that also keeps its compact canonical JSON.

    The JSON is encoded once, for the content hash, and reused by ``canonical_json(report, indent=None)``
    (what the API sends and stores): for a big site that encoding, mostly of the site's coordinates, was a
    tenth of the check. A report is not changed after the check: its content hash would be wrong too.
    """

    __slots__ = ("compact_json",)


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False)


def _sealed(body: dict[str, Any]) -> SiteReport:
    """``body`` with its content hash, and its compact canonical JSON built from the same encoded parts
    (with ``indent=None`` json writes an object as ``{"key": value, ...}`` in sorted key order)."""
    parts = {k: f"{_dumps(k)}: {_dumps(v)}" for k, v in body.items()}
    digest = hashlib.sha256(("{" + ", ".join(parts[k] for k in sorted(parts)) + "}").encode("utf-8")).hexdigest()
    report = SiteReport({**body, "content_sha256": digest})
    parts["content_sha256"] = f"{_dumps('content_sha256')}: {_dumps(digest)}"
    report.compact_json = "{" + ", ".join(parts[k] for k in sorted(parts)) + "}"
    return report


def canonical_json(report: dict[str, Any], indent: int | None = 2) -> str:
    """The report's bytes: sorted keys, UTF-8 text, no floating noise beyond the rounding above."""
    if indent is None and isinstance(report, SiteReport):
        return report.compact_json
    return _dumps(report, indent)


def content_hash(report: dict[str, Any]) -> str:
    return hashlib.sha256(_dumps({k: v for k, v in report.items() if k != "content_sha256"}).encode("utf-8")
                          ).hexdigest()
