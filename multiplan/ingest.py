"""Plan ingestion: read -> check -> repair -> reproject -> classify -> measure -> one new version."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from multiplan import config
from multiplan.classify import class_field_for, class_name, classify, find_field, normalise_codes
from multiplan.crs import SQM_PER_HA, SQM_PER_MU, STORAGE_CRS, ellipsoidal_area, geodesic_length
from multiplan.errors import InputError
from multiplan.io import PlanSource, RawChunk, open_plan_source, read_chunks, sha256_of
from multiplan.specs import LayerSpec, layer_spec
from multiplan.store.base import LoadMeta, PlanStore

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

_FAMILY = {"polygon": (3, 6), "line": (1, 5), "point": (0, 4)}
_FAMILY_NAME = {0: "point", 4: "point", 1: "line", 5: "line", 3: "polygon", 6: "polygon", 2: "line"}
# Overlaps and gaps below this area (m²) are digitising noise, not data-quality findings.
QC_MIN_AREA_M2 = 1.0
# Coordinates beyond this magnitude are junk (1e300 and the like) in any Hainan CRS.
MAX_ABS_COORD = 1e9
MAX_LISTED = 20
# Vertices closer than this (degrees, ~0.1 mm) are the same vertex when matching shared edges.
_SNAP_DEG = 1e-9


@dataclass
class LoadOptions:
    crs: pyproj.CRS | None = None
    encoding: str | None = None
    class_field: str | None = None
    label: str | None = None
    source_layer: str | None = None
    chunk_size: int = 50_000


@dataclass
class _Tally:
    """What the chunks have found so far."""

    read: int = 0
    loaded: int = 0
    family: int | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    unknown_codes: Counter = field(default_factory=Counter)
    unknown_zones: Counter = field(default_factory=Counter)
    area: dict[str, list[float]] = field(default_factory=dict)  # code -> [area, length, count]
    qc_geoms: list[np.ndarray] = field(default_factory=list)
    qc_numbers: list[np.ndarray] = field(default_factory=list)
    qc_keys: list[np.ndarray] = field(default_factory=list)


def _numbers(values: np.ndarray | list[int]) -> str:
    values = list(values)
    shown = ", ".join(f"#{int(v)}" for v in values[:MAX_LISTED])
    return shown + (f" … (+{len(values) - MAX_LISTED})" if len(values) > MAX_LISTED else "")


def _source_hash(path: Path) -> str:
    if path.suffix.lower() != ".shp":
        return sha256_of(path)
    h = hashlib.sha256()
    for part in sorted(path.parent.glob(path.stem + ".*")):
        h.update(part.suffix.lower().encode())
        h.update(bytes.fromhex(sha256_of(part)))
    return h.hexdigest()


def _to_storage(geoms: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    if crs.equals(STORAGE_CRS, ignore_axis_order=True):
        return geoms
    t = pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])
    return shapely.transform(geoms, move)


def _check_types(geoms: np.ndarray, numbers: np.ndarray, spec: LayerSpec, src: PlanSource, tally: _Tally) -> np.ndarray:
    """Refuse mixed or wrong geometry types; unpack collections holding one family."""
    types = shapely.get_type_id(geoms)
    coll = np.flatnonzero(types == 7)
    for i in coll:  # GDAL turns some odd polygons into collections: keep them if polygonal
        parts = shapely.get_parts(geoms[i])
        part_types = set(shapely.get_type_id(parts).tolist())
        if part_types <= {3, 6}:
            geoms[i] = shapely.multipolygons(shapely.get_parts(parts))
        elif part_types <= {1, 5}:
            geoms[i] = shapely.multilinestrings(shapely.get_parts(parts))
    families = {_FAMILY_NAME.get(t, "other") for t in shapely.get_type_id(geoms).tolist()}
    if tally.family is not None:
        families.add(_FAMILY_NAME[tally.family])
    if "other" in families:
        raise InputError("unsupported_geometry", file=src.name, got=src.geometry_type or "GeometryCollection")
    if len(families) > 1:
        raise InputError("mixed_geometry", file=src.name, types=", ".join(sorted(families)))
    family = families.pop()
    if family != spec.geometry:
        raise InputError("wrong_geometry", file=src.name, got=family, layer=spec.id, expected=spec.geometry,
                         features=_numbers(numbers[:MAX_LISTED]))
    tally.family = _FAMILY[spec.geometry][0]
    return geoms


def _check_declared_type(src: PlanSource, spec: LayerSpec) -> None:
    """Refuse early when the file declares a geometry family the layer cannot hold."""
    declared = src.geometry_type.lower().replace(" z", "").replace(" m", "")
    family = next((f for f, words in (("polygon", ("polygon", "surface")), ("line", ("line", "curve")),
                                      ("point", ("point",))) if any(w in declared for w in words)), None)
    if family is not None and family != spec.geometry:
        raise InputError("wrong_geometry", file=src.name, got=src.geometry_type, layer=spec.id,
                         expected=spec.geometry, features=f"#1–#{src.feature_count}")


def _check_coordinates(geoms: np.ndarray, numbers: np.ndarray, src: PlanSource) -> None:
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    bad = ~np.all(np.isfinite(coords) & (np.abs(coords) < MAX_ABS_COORD), axis=1)
    if bad.any():
        raise InputError("bad_coordinates", file=src.name, features=_numbers(np.unique(numbers[owner[bad]])))


def _check_region(geoms: np.ndarray, numbers: np.ndarray, src: PlanSource) -> None:
    b = shapely.bounds(geoms)
    minx, miny, maxx, maxy = config.REGION_BOUNDS
    with np.errstate(invalid="ignore"):
        outside = ~((b[:, 0] >= minx) & (b[:, 2] <= maxx) & (b[:, 1] >= miny) & (b[:, 3] <= maxy))
    if outside.any():
        assert src.crs is not None
        raise InputError("out_of_region", file=src.name, features=_numbers(numbers[outside]), crs=src.crs.label)


def _repair_polygons(geoms: np.ndarray, numbers: np.ndarray, shapefile: bool, tally: _Tally
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Make every polygon valid, oriented (exterior CCW) and multi; returns a keep mask."""
    keep = np.ones(len(geoms), dtype=bool)
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if len(invalid):
        reasons = shapely.is_valid_reason(geoms[invalid])
        fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        for i, reason, new in zip(invalid, reasons, fixed, strict=True):
            parts = shapely.get_parts(new)
            polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
            merged = shapely.get_parts(polys) if len(polys) else polys
            if len(merged) == 0 or shapely.area(shapely.multipolygons(merged)) == 0:
                keep[i] = False
                tally.rejected.append({"feature": int(numbers[i]), "reason": "unrepairable", "detail": reason})
                continue
            before = float(ellipsoidal_area(np.array([geoms[i]]))[0])
            geoms[i] = shapely.multipolygons(merged)
            tally.repairs.append({"feature": int(numbers[i]), "kind": "invalid_polygon", "detail": reason,
                                  "area_before_m2": before,
                                  "area_after_m2": float(ellipsoidal_area(np.array([geoms[i]]))[0])})
    parts, owner = shapely.get_parts(geoms, return_index=True)
    ccw = shapely.is_ccw(shapely.get_exterior_ring(parts))
    # shapefiles store shells clockwise; other formats (GeoJSON, GeoPackage) counter-clockwise
    wrong = ccw if shapefile else ~ccw
    for i in np.unique(owner[wrong]):
        if keep[i]:
            tally.repairs.append({"feature": int(numbers[i]), "kind": "ring_orientation",
                                  "detail": "shell ring had the wrong orientation for its format"})
    oriented = shapely.orient_polygons(parts, exterior_cw=False)
    out = np.empty(len(geoms), dtype=object)
    out[:] = shapely.multipolygons(oriented, indices=owner) if len(parts) else []
    return out, keep


def _attrs_json(attrs: pd.DataFrame) -> list[str]:
    if attrs.shape[1] == 0:
        return ["{}"] * len(attrs)
    text = attrs.reset_index(drop=True).to_json(orient="records", lines=True, force_ascii=False,
                                                date_format="iso")
    return text.splitlines()


def _text_column(attrs: pd.DataFrame, candidates: tuple[str, ...]) -> pd.Series | None:
    name = find_field(list(attrs.columns), candidates)
    if name is None:
        return None
    return normalise_codes(attrs[name], set())


def _process_chunk(chunk: RawChunk, src: PlanSource, spec: LayerSpec, code_field: str,
                   tally: _Tally) -> gpd.GeoDataFrame:
    numbers = chunk.feature_no
    geoms = chunk.geometry
    attributes = chunk.attributes
    if src.deleted_records:  # the rule: a record flagged deleted in the .dbf is not part of the plan
        live = ~np.isin(numbers, src.deleted_records)
        numbers, geoms, attributes = numbers[live], geoms[live], attributes[live].reset_index(drop=True)
    tally.read += len(numbers)
    if chunk.unreadable:
        raise InputError("unsupported_geometry", file=src.name, got=src.geometry_type or "unknown")
    for n in chunk.unclosed:
        tally.repairs.append({"feature": n, "kind": "unclosed_ring", "detail": "ring closed by repeating its first point"})
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for n in numbers[empty]:
        tally.rejected.append({"feature": int(n), "reason": "empty", "detail": "NULL or empty geometry"})
    keep = ~empty
    geoms, numbers, attrs = geoms[keep], numbers[keep], attributes[keep].reset_index(drop=True)
    if len(geoms) == 0:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=STORAGE_CRS))
    geoms = _check_types(geoms, numbers, spec, src, tally)
    _check_coordinates(geoms, numbers, src)
    assert src.crs is not None
    geoms = _to_storage(geoms, src.crs.crs)
    _check_region(geoms, numbers, src)
    if spec.geometry == "polygon":
        geoms, ok = _repair_polygons(geoms, numbers, src.driver == "ESRI Shapefile", tally)
    else:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        maker = shapely.multilinestrings if spec.geometry == "line" else shapely.multipoints
        geoms = np.asarray(maker(parts, indices=owner), dtype=object)
        ok = np.ones(len(geoms), dtype=bool)
        if spec.geometry == "line":
            degenerate = shapely.length(geoms) == 0
            for n in numbers[degenerate]:
                tally.rejected.append({"feature": int(n), "reason": "empty", "detail": "zero-length line"})
            ok &= ~degenerate
    geoms, numbers, attrs = geoms[ok], numbers[ok], attrs[ok].reset_index(drop=True)

    known = set(spec.crosswalk.lookup())
    codes = normalise_codes(attrs[code_field], known)
    unified, match, unknown = classify(codes, spec.crosswalk)
    tally.unknown_codes.update(unknown)
    frame = pd.DataFrame({"feature_no": numbers.astype(np.int64)})
    keys = _text_column(attrs, spec.id_fields)
    frame["feature_key"] = keys.fillna(pd.Series(numbers.astype(str))) if keys is not None else numbers.astype(str)
    frame["orig_code"] = codes.values
    frame["ydyh_code"] = unified.values
    frame["ydyh_match"] = match.values
    zone = None
    if spec.zone_field is not None:
        zone_col = find_field(list(attrs.columns), (spec.zone_field.name, *spec.zone_field.aliases))
        if zone_col is not None:
            zone = normalise_codes(attrs[zone_col], set(spec.zone_field.values))
            tally.unknown_zones.update(str(z) for z in zone if z not in spec.zone_field.values)
    frame["zone_code"] = zone.values if zone is not None else None
    admin = _text_column(attrs, spec.admin_fields)
    frame["xzqdm"] = admin.values if admin is not None else None
    if spec.corridor is not None:
        frame["level"] = codes.values
        frame["corridor_m"] = [spec.corridor.width(c) for c in codes]
    else:
        frame["level"] = None
        frame["corridor_m"] = np.nan
    if spec.geometry == "polygon":
        frame["area_m2"] = ellipsoidal_area(geoms)
        frame["length_m"] = np.nan
        tally.qc_geoms.append(geoms)
        tally.qc_numbers.append(numbers)
        tally.qc_keys.append(frame["feature_key"].to_numpy(dtype=object))
    else:
        frame["area_m2"] = np.nan
        frame["length_m"] = geodesic_length(geoms) if spec.geometry == "line" else np.nan
    frame["source_attributes"] = _attrs_json(attrs)
    for code, area, length in zip(unified.tolist(), frame["area_m2"], frame["length_m"], strict=True):
        slot = tally.area.setdefault(code if isinstance(code, str) else "", [0.0, 0.0, 0])
        slot[0] += 0.0 if np.isnan(area) else area
        slot[1] += 0.0 if np.isnan(length) else length
        slot[2] += 1
    tally.loaded += len(frame)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS))


def _unmatched_segments(geoms: np.ndarray) -> np.ndarray:
    """Boundary segments not shared by exactly two polygons, as an (n, 2, 2) coordinate array.

    In a clean coverage every inner edge is used twice, once each way (by the two neighbours); what
    is left is the outline of the plan, of its gaps and of any overlaps.
    """
    rings = shapely.get_rings(shapely.get_parts(geoms))
    coords, owner = shapely.get_coordinates(rings, return_index=True)
    same = owner[1:] == owner[:-1]
    start, end = coords[:-1][same], coords[1:][same]
    q0 = np.round(start / _SNAP_DEG).astype(np.int64)
    q1 = np.round(end / _SNAP_DEG).astype(np.int64)
    keep = np.any(q0 != q1, axis=1)
    start, end, q0, q1 = start[keep], end[keep], q0[keep], q1[keep]
    # one 64-bit hash per directed segment; a collision could only hide a finding, never invent one
    u0, u1 = q0.astype(np.uint64), q1.astype(np.uint64)
    m = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9),
         np.uint64(0x27D4EB2F165667C5))
    with np.errstate(over="ignore"):
        forward = u0[:, 0] * m[0] + u0[:, 1] * m[1] + u1[:, 0] * m[2] + u1[:, 1] * m[3]
        backward = u1[:, 0] * m[0] + u1[:, 1] * m[1] + u0[:, 0] * m[2] + u0[:, 1] * m[3]
    counts = pd.Series(forward).value_counts()
    # shells run counter-clockwise, so a shared edge is used once each way; duplicates break that
    matched = (pd.Series(forward).map(counts).to_numpy() == 1) & (
        pd.Series(backward).map(counts).fillna(0).to_numpy() == 1)
    odd = ~matched
    return np.stack([start[odd], end[odd]], axis=1)


def coverage_findings(geoms: np.ndarray, numbers: np.ndarray, keys: np.ndarray | None = None,
                      min_area_m2: float = QC_MIN_AREA_M2) -> dict[str, list[dict[str, Any]]]:
    """Overlaps between features and gaps inside a coverage plan (data-quality findings).

    Only the unshared boundary segments are noded and polygonised; each face is then covered by
    zero features (a gap), one (fine) or several (an overlap, measured pair by pair).
    """
    segments = _unmatched_segments(geoms)
    faces = np.array([], dtype=object)
    if len(segments):
        noded = shapely.node(shapely.multilinestrings(shapely.linestrings(segments)))
        faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    tree = shapely.STRtree(geoms)
    points = shapely.point_on_surface(faces)
    face_idx, poly_idx = tree.query(points, predicate="intersects")
    cover = np.bincount(face_idx, minlength=len(faces))
    face_area = ellipsoidal_area(faces)
    gaps = []
    for i in np.flatnonzero((cover == 0) & (face_area >= min_area_m2)):
        gaps.append({"area_m2": float(face_area[i]), "point": [round(points[i].x, 7), round(points[i].y, 7)]})
    # The number of features covering a face is the same all over it, but which ones may change
    # across shared edges inside it: test every feature that meets an overlap face, pair by pair.
    pairs = set()
    multi = np.flatnonzero(cover >= 2)
    if len(multi):
        f_idx, p_idx = tree.query(faces[multi], predicate="intersects")
        for f in np.unique(f_idx):
            owners = sorted(p_idx[f_idx == f].tolist())
            pairs.update((a, b) for k, a in enumerate(owners) for b in owners[k + 1:])
    overlaps = []
    if pairs:
        left, right = np.array(sorted(pairs)).T
        pieces = shapely.intersection(geoms[left], geoms[right])
        for a, b, piece, area in zip(left, right, pieces, ellipsoidal_area(pieces), strict=True):
            if area >= min_area_m2:
                pt = shapely.point_on_surface(piece)
                first, second = sorted([a, b], key=lambda i: numbers[i])
                overlaps.append({"features": [int(numbers[first]), int(numbers[second])],
                                 "keys": [str(keys[first]), str(keys[second])] if keys is not None else None,
                                 "area_m2": float(area), "point": [round(pt.x, 7), round(pt.y, 7)]})
    overlaps.sort(key=lambda o: o["features"])
    gaps.sort(key=lambda g: g["point"])
    return {"overlaps": overlaps, "gaps": gaps}


def _summary(src: PlanSource, spec: LayerSpec, meta: LoadMeta, code_field: str, tally: _Tally,
             quality: dict[str, Any]) -> dict[str, Any]:
    assert src.crs is not None
    rows = []
    for code, (area, length, count) in sorted(tally.area.items()):
        rows.append({"code": code or None, "name_zh": class_name(code or None, "zh"),
                     "name_en": class_name(code or None, "en"), "features": count,
                     "area_m2": round(area, 3), "area_ha": round(area / SQM_PER_HA, 6),
                     "area_mu": round(area / SQM_PER_MU, 4), "length_m": round(length, 3)})
    notes = list(src.notes)
    if src.deleted_records:
        notes.append("deleted_records_skipped")
    return {
        "layer": spec.id, "file": src.name, "dataset": src.dataset.name, "source_layer": src.layer,
        "sha256": meta.source_sha256, "label": meta.label, "class_field": code_field,
        "counts": {"read": tally.read, "loaded": tally.loaded, "rejected": len(tally.rejected),
                   "deleted_records": len(src.deleted_records), "repaired": len({r["feature"] for r in tally.repairs})},
        "crs": {"used": src.crs.label, "source": src.crs.source, "guessed": src.crs.guessed,
                "note": src.crs.note},
        "encoding": {"used": src.encoding, "source": src.encoding_source,
                     "guessed": src.encoding_source == "detected"},
        "notes": notes,
        "deleted_records": src.deleted_records[:1000],
        "rejected": tally.rejected,
        "repairs": tally.repairs,
        "unknown_codes": dict(sorted(tally.unknown_codes.items())),
        "unknown_zone_codes": dict(sorted(tally.unknown_zones.items())),
        "quality": quality,
        "area_by_class": rows,
    }


def load_plan(store: PlanStore, layer_id: str, path: str | Path, options: LoadOptions | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Load one plan file as a new version of ``layer_id``; return the load report.

    All or nothing: on any error the staged features are discarded, a failed-load audit record is
    written, and the error is raised again.
    """
    options = options or LoadOptions()
    spec = layer_spec(layer_id)
    path = Path(path)
    meta = LoadMeta(layer=layer_id, label=options.label or "", source_name=path.name,
                    source_sha256=_source_hash(path) if path.is_file() else "")
    session = store.begin_load(meta, spec.geometry)
    try:
        with tempfile.TemporaryDirectory(prefix="multiplan-load-") as tmp:
            src = open_plan_source(path, Path(tmp), source_layer=options.source_layer,
                                   encoding=options.encoding, crs=options.crs)
            _check_declared_type(src, spec)
            code_field = class_field_for(spec, src.fields, options.class_field, src.name)
            tally = _Tally()
            for chunk in read_chunks(src, options.chunk_size):
                session.write(_process_chunk(chunk, src, spec, code_field, tally))
                if progress:
                    progress("read", tally.read, src.feature_count)
            if tally.loaded == 0:
                raise InputError("all_rejected", file=src.name)
            quality: dict[str, Any] = {"checked": False}
            if spec.coverage and tally.qc_geoms:
                if progress:
                    progress("quality", 0, 1)
                quality = {"checked": True, "min_area_m2": QC_MIN_AREA_M2,
                           **coverage_findings(np.concatenate(tally.qc_geoms), np.concatenate(tally.qc_numbers),
                                              np.concatenate(tally.qc_keys))}
                if progress:
                    progress("quality", 1, 1)
            summary = _summary(src, spec, meta, code_field, tally, quality)
        version = session.commit(summary)
    except BaseException as exc:
        session.abort(f"{type(exc).__name__}: {exc}")
        raise
    return {**summary, "version": version.version, "loaded_at": version.loaded_at}


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False)
