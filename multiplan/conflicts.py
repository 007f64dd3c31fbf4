"""Conflict detection between plans, rule by rule: the patches (图斑) where plans contradict each other.

It takes plan features as frames (and rasters already read) and returns patches as a frame; storing
runs and patches is the store's business. Kinds handled here: overlap, containment, corridor, raster.
Coverage findings come from each load's quality check.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
import shapely.geometry

from multiplan.crs import (
    SQM_PER_HA,
    SQM_PER_MU,
    STORAGE_CRS,
    ellipsoidal_area,
    geodesic_length,
    transformer,
)
from multiplan.overlay import (
    differences_from_union,
    intersecting_pairs,
    measured_intersections,
    polygonal_parts,
    robust,
    union_area,
)
from multiplan.rules import ClassFilter, RuleSpec
from multiplan.rules.priority import Priority
from multiplan.rules.spec import RuleSide
from multiplan.specs import LAYER_IDS

if TYPE_CHECKING:  # multiplan.io loads GDAL (pyogrio): not needed to detect
    from multiplan.io import Raster

PATCH_COLUMNS = ("rule", "rule_version", "severity", "layer_a", "version_a", "feature_a", "class_a",
                 "orig_a", "zone_a", "layer_b", "version_b", "feature_b", "class_b", "orig_b", "zone_b", "xzqdm",
                 "status", "area_m2", "area_ha", "area_mu")


@dataclass
class Detection:
    """What one rule found: patches, what its tolerances suppressed, what could not be computed."""

    rule: RuleSpec
    patches: gpd.GeoDataFrame
    suppressed_count: int = 0
    suppressed_area_m2: float = 0.0
    unknown: list[dict[str, Any]] = field(default_factory=list)

    @property
    def area_m2(self) -> float:
        """The area of the union of the patches: features overlapping inside a plan count once."""
        if self.patches.empty:
            return 0.0
        return union_area(self.patches.geometry.values, ellipsoidal_area)


def class_mask(unified: np.ndarray, original: np.ndarray, zone: np.ndarray, where: ClassFilter) -> np.ndarray:
    """Which features (given by their unified, original and zone codes) a rule side's class filter picks."""
    verdicts = {c: where.matches_unified(c) for c in set(unified)}  # a plan has few distinct codes
    mask = np.fromiter((verdicts[c] for c in unified), dtype=bool, count=len(unified))
    for values, allowed in ((original, where.original), (zone, where.zone)):
        if allowed:  # set membership: codes may be None, which np.isin cannot sort with strings
            mask &= np.fromiter((v in allowed for v in values), dtype=bool, count=len(values))
    return mask


def select(frame: gpd.GeoDataFrame, where: ClassFilter) -> gpd.GeoDataFrame:
    """The features of a plan version that a rule side's class filter picks."""
    return frame[class_mask(*(frame[c].to_numpy(dtype=object) for c in ("ydyh_code", "orig_code", "zone_code")),
                            where)]


def _side(frames: dict[str, gpd.GeoDataFrame], layers: tuple[str, ...], where: ClassFilter) -> gpd.GeoDataFrame:
    parts = []
    for layer in layers:
        if layer in frames:
            chosen = select(frames[layer], where)
            parts.append(chosen.assign(layer=layer))
    if not parts:  # the layer has no version yet: nothing to compare (the run reports it missing)
        columns = ["layer", "feature_key", "ydyh_code", "orig_code", "zone_code", "xzqdm", "corridor_m",
                   "source_attributes"]
        return gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in columns},
                                geometry=gpd.GeoSeries([], crs=STORAGE_CRS))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=STORAGE_CRS)


def _metric_crs(geoms: np.ndarray) -> pyproj.CRS:
    """The CGCS2000 3-degree Gauss-Kruger zone (no prefix) holding most of ``geoms``: metres for buffers."""
    lon = np.nanmedian(shapely.get_x(shapely.centroid(geoms))) if len(geoms) else 111.0
    return pyproj.CRS.from_epsg(4546 if lon >= 109.5 else 4545)


def _project(geoms: np.ndarray, source: pyproj.CRS, target: pyproj.CRS) -> np.ndarray:
    if source == target:  # a DEM in EPSG:4490 already (site checks ask for its steep cells every time)
        return geoms
    t = transformer(source, target)
    return shapely.transform(geoms, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def corridors(lines: gpd.GeoDataFrame) -> np.ndarray:
    """Each network line buffered by half its corridor width on each side (round ends, as GIS buffers do), in lon/lat."""
    metric = _metric_crs(lines.geometry.values)
    projected = _project(lines.geometry.values, STORAGE_CRS, metric)
    buffered = shapely.buffer(projected, lines["corridor_m"].to_numpy(dtype=float) / 2)
    return _project(buffered, metric, STORAGE_CRS)


def _excepted(frame: gpd.GeoDataFrame, rule: RuleSpec) -> np.ndarray:
    """Features carrying what one of the rule's exceptions asks for (e.g. an approval reference)."""
    out = np.zeros(len(frame), dtype=bool)
    for exc in rule.exceptions:
        for i, attrs in enumerate(frame["source_attributes"]):
            if any(str(attrs.get(f) or "").strip() for f in exc["field"]):
                out[i] = True
    return out


def slope_degrees(raster: Raster) -> np.ndarray:
    """The slope of every cell in degrees, from central differences (one-sided at the edges)."""
    values = raster.values
    dx, dy = abs(raster.transform.a), abs(raster.transform.e)
    if raster.crs.is_geographic:  # degrees to metres at each row's latitude
        lat = raster.transform.f + raster.transform.e * (np.arange(values.shape[0]) + 0.5)
        dy_m = dy * 110_574.0
        dx_m = (dx * 111_320.0 * np.cos(np.radians(lat)))[:, None]
        gy, gx = np.gradient(values, axis=0) / dy_m, np.gradient(values, axis=1) / dx_m
    else:
        gy, gx = np.gradient(values, dy, dx)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


@functools.cache
def _rasterio_features() -> ModuleType:
    """rasterio (and GDAL under it) loads only for raster rules: vector detection runs without them."""
    import rasterio.errors
    import rasterio.features

    # rasterio.features.shapes hides this warning about its own scratch raster with catch_warnings, which is
    # not thread-safe: when site checks run on several threads it leaks, though the shapes are right (checked)
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning, module=r"rasterio\.features")
    return rasterio.features


def slope_areas(raster: Raster, above_deg: float) -> np.ndarray:
    """Polygons (lon/lat) of the cells whose slope (central differences) exceeds ``above_deg``."""
    features = _rasterio_features()
    steep = slope_degrees(raster) > above_deg
    shapes = [shapely.geometry.shape(g) for g, v in
              features.shapes(steep.astype("uint8"), mask=steep, transform=raster.transform) if v == 1]
    if not shapes:
        return np.array([], dtype=object)
    return _project(np.array(shapes, dtype=object), raster.crs, STORAGE_CRS)


def suggest_resolutions(patches: gpd.GeoDataFrame, priority: Priority) -> gpd.GeoDataFrame:
    """Add to each patch which plan should give way (a, b or review) and why, in both languages."""
    out = patches.copy()
    # a suggestion depends on the layers and zones only: a province's millions of patches have few of those
    codes, combos = pd.MultiIndex.from_frame(out[["layer_a", "zone_a", "layer_b", "zone_b"]].astype(object)).factorize()
    made = []
    for combo in combos:
        la, za, lb, zb = (None if pd.isna(v) else v for v in combo)
        made.append(priority.suggest(la, za, lb if lb in LAYER_IDS else None, zb))
    for column, key in (("give_way", "give_way"), ("suggestion_zh", "zh"), ("suggestion_en", "en")):
        out[column] = np.asarray([m[key] for m in made] or [None], dtype=object)[codes]
    return out


def detect(rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int],
           rasters: dict[str, Raster] | None = None) -> Detection:
    """Run ``rule`` on plan versions given as frames (features as stored) and rasters already read."""
    if rule.kind == "corridor":
        return _detect_corridor(rule, frames, versions)
    if rule.kind == "raster":
        return _detect_raster(rule, frames, versions, rasters or {})
    if rule.kind not in ("overlap", "containment"):
        raise ValueError(f"{rule.id} is a {rule.kind} rule: its findings come from the load's quality check")
    assert rule.b is not None
    a = _side(frames, rule.a.layers, rule.a.where)
    b = _side(frames, rule.b.layers, rule.b.where)
    if rule.kind == "overlap":
        left, right = intersecting_pairs(a.geometry.values, b.geometry.values, exact=False)
        pieces, failed, areas = measured_intersections(a.geometry.values[left], b.geometry.values[right],
                                                       ellipsoidal_area, candidates=True)
    else:  # containment: the part of each A feature outside everything B
        left = np.arange(len(a))
        right = np.full(len(a), -1)
        pieces, failed = differences_from_union(a.geometry.values, b.geometry.values)
        pieces = polygonal_parts(pieces)
        areas = ellipsoidal_area(np.array([p if p is not None else shapely.MultiPolygon() for p in pieces],
                                          dtype=object))
    min_area = rule.tolerance.get("min_area_m2", 0.0)
    keep = ~failed & (areas >= min_area) & (areas > 0)
    if rule.kind == "containment" and "area_ratio" in rule.tolerance:
        own = ellipsoidal_area(a.geometry.values)
        keep &= areas > (1 - rule.tolerance["area_ratio"]) * own  # mostly inside counts as inside
    small = ~failed & ~keep & (areas > 0)
    detection = Detection(rule, _patches(rule, a, b, left, right, pieces, areas, keep, versions),
                          int(small.sum()), float(areas[small].sum()))
    for i in np.flatnonzero(failed):
        detection.unknown.append({"status": "unknown_needs_review", "layer_a": a["layer"].iloc[left[i]],
                                  "feature_a": str(a["feature_key"].iloc[left[i]]),
                                  "layer_b": b["layer"].iloc[right[i]] if right[i] >= 0 else None,
                                  "feature_b": str(b["feature_key"].iloc[right[i]]) if right[i] >= 0 else None})
    return detection


def _detect_corridor(rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int]) -> Detection:
    """Corridors against polygons: patch area, plus the line's length inside and its crossings."""
    assert rule.b is not None
    lines = _side(frames, rule.a.layers, rule.a.where)
    b = _side(frames, rule.b.layers, rule.b.where)
    a = lines.copy()
    a["geometry"] = corridors(lines) if len(lines) else []
    left, right = intersecting_pairs(a.geometry.values, b.geometry.values, exact=False)
    pieces, failed, areas = measured_intersections(a.geometry.values[left], b.geometry.values[right],
                                                   ellipsoidal_area, candidates=True)
    keep = ~failed & (areas >= rule.tolerance.get("min_area_m2", 0.0)) & (areas > 0)
    small = ~failed & ~keep & (areas > 0)
    patches = _patches(rule, a, b, left, right, pieces, areas, keep, versions)
    inside, _ = robust(shapely.intersection, lines.geometry.values[left[keep]], b.geometry.values[right[keep]])
    patches["length_inside_m"] = geodesic_length(inside) if len(inside) else []
    patches["crossings"] = shapely.get_num_geometries(shapely.line_merge(inside)) if len(inside) else []
    excepted = _excepted(lines, rule)[left[keep]]
    patches.loc[excepted, "status"] = "accepted_exception"
    detection = Detection(rule, patches, int(small.sum()), float(areas[small].sum()))
    detection.unknown = [{"status": "unknown_needs_review", "layer_a": lines["layer"].iloc[left[i]],
                          "feature_a": str(lines["feature_key"].iloc[left[i]]), "layer_b": b["layer"].iloc[right[i]],
                          "feature_b": str(b["feature_key"].iloc[right[i]])} for i in np.flatnonzero(failed)]
    return detection


def _detect_raster(rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int],
                   rasters: dict[str, Raster]) -> Detection:
    """A features on raster cells past the rule's threshold (slope above 25° for the DEM)."""
    params = rule.params["raster"]
    if params["source"] not in rasters:
        a = _side(frames, rule.a.layers, rule.a.where)
        return Detection(rule, _patches(rule, a, a.iloc[:0], np.zeros(0, int), np.zeros(0, int),
                                        np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, bool), versions),
                         unknown=[{"status": "unknown_needs_review", "reason": f"no {params['source']} raster"}])
    if params["measure"] != "slope_deg":
        raise ValueError(f"{rule.id}: measure {params['measure']} is not computed yet")
    steep = slope_areas(rasters[params["source"]], float(params["above"]))
    label = {"slope_deg": "slope>{:g}°", "elevation_m": "elevation>{:g}m"}[params["measure"]].format(params["above"])
    b = gpd.GeoDataFrame({"layer": params["source"], "feature_key": label,
                          "ydyh_code": None, "orig_code": None, "zone_code": None, "xzqdm": None},
                         index=range(1), geometry=[shapely.union_all(steep) if len(steep) else shapely.Polygon()],
                         crs=STORAGE_CRS)
    return detect(RuleSpec(**{**rule.__dict__, "kind": "overlap",
                              "b": RuleSide((params["source"],), ClassFilter())}),
                  {**frames, params["source"]: b}, versions)


def pick_values(column: pd.Series, idx: np.ndarray) -> Any:
    """``column``'s values at ``idx`` (missing where -1) in the column's own storage: patch frames and
    one maps have millions of rows, and a Python string for each costs more than its geometry."""
    if isinstance(column.dtype, np.dtype):  # numpy-backed (object): None where missing, as stored
        out = np.full(len(idx), None, dtype=object)
        has = idx >= 0
        out[has] = column.to_numpy()[idx[has]]
        return out
    return column.array.take(idx, allow_fill=True)


def _layer_versions(layers: pd.Series, idx: np.ndarray, versions: dict[str, int]) -> list:
    """The plan version of each picked feature's layer (None where missing)."""
    codes, names = pd.factorize(layers)
    per_layer = np.array([versions.get(name) for name in names] + [None], dtype=object)
    return per_layer[np.where(idx >= 0, codes[np.maximum(idx, 0)] if len(codes) else -1, -1)].tolist()


def _patches(rule: RuleSpec, a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, left: np.ndarray, right: np.ndarray,
             pieces: np.ndarray, areas: np.ndarray, keep: np.ndarray, versions: dict[str, int]) -> gpd.GeoDataFrame:
    li, ri = left[keep], right[keep]
    rows = {
        "rule": rule.id, "rule_version": rule.version, "severity": rule.severity,
        "layer_a": pick_values(a["layer"], li), "version_a": _layer_versions(a["layer"], li, versions),
        "feature_a": pick_values(a["feature_key"], li), "class_a": pick_values(a["ydyh_code"], li),
        "orig_a": pick_values(a["orig_code"], li), "zone_a": pick_values(a["zone_code"], li),
        "layer_b": pick_values(b["layer"], ri), "version_b": _layer_versions(b["layer"], ri, versions),
        "feature_b": pick_values(b["feature_key"], ri), "class_b": pick_values(b["ydyh_code"], ri),
        "orig_b": pick_values(b["orig_code"], ri), "zone_b": pick_values(b["zone_code"], ri),
        "xzqdm": pick_values(a["xzqdm"], li), "status": "open",
        "area_m2": areas[keep], "area_ha": areas[keep] / SQM_PER_HA, "area_mu": areas[keep] / SQM_PER_MU,
    }
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=list(PATCH_COLUMNS)),
                            geometry=gpd.GeoSeries(pieces[keep], crs=STORAGE_CRS))
