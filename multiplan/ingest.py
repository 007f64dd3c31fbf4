"""Plan ingestion: read -> check -> repair -> reproject -> classify -> measure -> one new version."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import shapely

from multiplan import config
from multiplan.classify import class_field_for, class_name, classify, find_field, normalise_codes
from multiplan.convexclip import kernel
from multiplan.coverage import coverage_findings, segment_keys
from multiplan.crs import (
    SQM_PER_HA,
    SQM_PER_MU,
    STORAGE_CRS,
    STORAGE_EPSG,
    RingTable,
    ellipsoidal_area,
    geodesic_length,
    ring_table,
    wkb_ring_table,
)
from multiplan.errors import InputError
from multiplan.indicators import evaluate, load_indicators
from multiplan.io import PlanSource, RawChunk, open_plan_source, read_again, read_chunk, sha256_of
from multiplan.specs import LayerSpec, layer_spec
from multiplan.store.base import EWKB_COLUMN, LoadMeta, LoadSession, PlanStore

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

_FAMILY = {"polygon": (3, 6), "line": (1, 5), "point": (0, 4)}
_FAMILY_NAME = {0: "point", 4: "point", 1: "line", 5: "line", 3: "polygon", 6: "polygon", 2: "line"}
# Overlaps and gaps below this area (m²) are digitising noise, not data-quality findings.
QC_MIN_AREA_M2 = 1.0
# Coordinates beyond this magnitude are junk (1e300 and the like) in any Hainan CRS.
MAX_ABS_COORD = 1e9
MAX_LISTED = 20
# Threads checking chunks; the machine's cores, at most two (the database takes its own).
WORKERS = max(1, min(2, os.cpu_count() or 1))
# From this many features on, chunks are checked in worker processes rather than threads.
PROCESS_MIN_FEATURES = 100_000


@dataclass
class LoadOptions:
    crs: pyproj.CRS | None = None
    encoding: str | None = None
    class_field: str | None = None
    label: str | None = None
    source_layer: str | None = None
    chunk_size: int = 50_000
    #: Check large files in worker processes, forked from this one (nothing imported again: a spawned
    #: worker took a second to start). Only for single-threaded callers, such as the CLI: a fork copies
    #: the calling thread alone.
    processes: bool = False


#: How many repairs and rejections a report lists one by one (all are counted).
MAX_REPORTED = 1000


@dataclass
class _ChunkResult:
    """What processing one chunk produced; chunks are processed in parallel and merged in order."""

    frame: Any  # the normalised features, then what the store's encoder made of them
    read: int = 0
    loaded: int = 0
    notes: list[str] = field(default_factory=list)  # GDAL's announcements while reading
    family: str | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    unknown_codes: Counter = field(default_factory=Counter)
    unknown_zones: Counter = field(default_factory=Counter)
    area: dict[str, list[float]] = field(default_factory=dict)  # code -> [area, length, count]
    county: dict[tuple, list[float]] = field(default_factory=dict)  # (xzqdm, code, orig, zone) -> [area, length]
    start: int = 0
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bounds: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    seg_keys: np.ndarray | None = None
    seg_owner: np.ndarray | None = None


@dataclass
class _Tally:
    """Everything the chunks found, merged."""

    read: int = 0
    loaded: int = 0
    family: str | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)
    n_rejected: int = 0
    repairs: list[dict[str, Any]] = field(default_factory=list)
    repairs_by_kind: Counter = field(default_factory=Counter)
    repaired_features: set = field(default_factory=set)
    unknown_codes: Counter = field(default_factory=Counter)
    unknown_zones: Counter = field(default_factory=Counter)
    area: dict[str, list[float]] = field(default_factory=dict)
    county: dict[tuple, list[float]] = field(default_factory=dict)
    positions: list[np.ndarray] = field(default_factory=list)
    fids: list[np.ndarray] = field(default_factory=list)
    bounds: list[np.ndarray] = field(default_factory=list)
    seg_keys: list[np.ndarray] = field(default_factory=list)
    seg_owner: list[np.ndarray] = field(default_factory=list)

    def merge(self, part: _ChunkResult, src: PlanSource) -> None:
        if part.family is not None:
            if self.family is not None and part.family != self.family:
                raise InputError("mixed_geometry", file=src.name, types=", ".join(sorted({self.family, part.family})))
            self.family = part.family
        self.read += part.read
        self.loaded += part.loaded
        for note in part.notes:
            if note not in src.notes:
                src.notes.append(note)
        self.n_rejected += len(part.rejected)
        self.rejected.extend(part.rejected[: max(0, MAX_REPORTED - len(self.rejected))])
        for r in part.repairs:
            self.repairs_by_kind[r["kind"]] += 1
            self.repaired_features.add(r["feature"])
        self.repairs.extend(part.repairs[: max(0, MAX_REPORTED - len(self.repairs))])
        self.unknown_codes.update(part.unknown_codes)
        self.unknown_zones.update(part.unknown_zones)
        for code, (area, length, count) in part.area.items():
            slot = self.area.setdefault(code, [0.0, 0.0, 0])
            slot[0] += area
            slot[1] += length
            slot[2] += count
        for key, (area, length) in part.county.items():
            slot = self.county.setdefault(key, [0.0, 0.0])
            slot[0] += area
            slot[1] += length
        self.positions.append(part.positions)
        self.fids.append(part.fids)
        self.bounds.append(part.bounds)
        if part.seg_keys is not None:
            self.seg_keys.append(part.seg_keys)
            self.seg_owner.append(part.seg_owner)


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


def _move(coords: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    """(x, y) coordinates in ``crs`` to EPSG:4490 lon/lat."""
    x, y = pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True).transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def _to_storage(geoms: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    return shapely.transform(geoms, lambda coords: _move(coords, crs))


def _check_types(geoms: np.ndarray, numbers: np.ndarray, spec: LayerSpec, src: PlanSource
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Refuse mixed or wrong geometry types; unpack collections holding one family (returns which)."""
    unpacked = shapely.get_type_id(geoms) == 7
    for i in np.flatnonzero(unpacked):  # GDAL turns some odd polygons into collections: keep them if polygonal
        parts = shapely.get_parts(geoms[i])
        part_types = set(shapely.get_type_id(parts).tolist())
        if part_types <= {3, 6}:
            geoms[i] = shapely.multipolygons(shapely.get_parts(parts))
        elif part_types <= {1, 5}:
            geoms[i] = shapely.multilinestrings(shapely.get_parts(parts))
    families = {_FAMILY_NAME.get(t, "other") for t in np.unique(shapely.get_type_id(geoms)).tolist()}
    if "other" in families:
        raise InputError("unsupported_geometry", file=src.name, got=src.geometry_type or "GeometryCollection")
    if len(families) > 1:
        raise InputError("mixed_geometry", file=src.name, types=", ".join(sorted(families)))
    family = families.pop()
    if family != spec.geometry:
        raise InputError("wrong_geometry", file=src.name, got=family, layer=spec.id, expected=spec.geometry,
                         features=_numbers(numbers[:MAX_LISTED]))
    return geoms, unpacked


def _check_declared_type(src: PlanSource, spec: LayerSpec) -> None:
    """Refuse early when the file declares a geometry family the layer cannot hold."""
    declared = src.geometry_type.lower().replace(" z", "").replace(" m", "")
    family = next((f for f, words in (("polygon", ("polygon", "surface")), ("line", ("line", "curve")),
                                      ("point", ("point",))) if any(w in declared for w in words)), None)
    if family is not None and family != spec.geometry:
        raise InputError("wrong_geometry", file=src.name, got=src.geometry_type, layer=spec.id,
                         expected=spec.geometry, features=f"#1–#{src.feature_count}")


def _sane(coords: np.ndarray) -> bool:
    """Whether every coordinate is finite and of a sane magnitude (one pass: NaN compares false)."""
    return bool(np.abs(coords).max(initial=0.0) < MAX_ABS_COORD)


def _outside_region(bounds: np.ndarray) -> np.ndarray:
    """Which boxes (minx, miny, maxx, maxy) are not wholly inside the region (NaN boxes are outside)."""
    minx, miny, maxx, maxy = config.REGION_BOUNDS
    with np.errstate(invalid="ignore"):
        return ~((bounds[:, 0] >= minx) & (bounds[:, 2] <= maxx) & (bounds[:, 1] >= miny) & (bounds[:, 3] <= maxy))


def _check_coordinates(geoms: np.ndarray, numbers: np.ndarray, src: PlanSource) -> None:
    if _sane(shapely.get_coordinates(geoms)):
        return
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    bad = ~np.all(np.isfinite(coords) & (np.abs(coords) < MAX_ABS_COORD), axis=1)
    if bad.any():
        raise InputError("bad_coordinates", file=src.name, features=_numbers(np.unique(numbers[owner[bad]])))


def _check_region(bounds: np.ndarray, numbers: np.ndarray, src: PlanSource) -> None:
    outside = _outside_region(bounds)
    if outside.any():
        assert src.crs is not None
        raise InputError("out_of_region", file=src.name, features=_numbers(numbers[outside]), crs=src.crs.label)


def _repair_polygons(geoms: np.ndarray, wkb: np.ndarray, packed: pa.Array | None, rewritten: np.ndarray,
                     numbers: np.ndarray, shapefile: bool, result: _ChunkResult
                     ) -> tuple[np.ndarray, np.ndarray, RingTable, pa.Array]:
    """Make every polygon valid; returns the valid polygons, a keep mask, their ring table (from the WKB
    as read, or written again where ``rewritten`` or repaired) and their EWKB as multipolygons in the OGC
    orientation (shells counter-clockwise), which is what the stores take."""
    keep = np.ones(len(geoms), dtype=bool)
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if len(invalid):
        reasons = shapely.is_valid_reason(geoms[invalid])
        before = ellipsoidal_area(geoms[invalid])
        fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        for i, reason, new, area in zip(invalid, reasons, fixed, before, strict=True):
            parts = shapely.get_parts(new)
            polys = shapely.get_parts(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
            repaired = shapely.multipolygons(polys) if len(polys) else None
            if repaired is None or shapely.area(repaired) == 0:
                keep[i] = False
                result.rejected.append({"feature": int(numbers[i]), "reason": "unrepairable", "detail": reason})
                geoms[i] = shapely.MultiPolygon()
                continue
            geoms[i] = repaired
            rewritten[i] = True
            result.repairs.append({"feature": int(numbers[i]), "kind": "invalid_polygon", "detail": reason,
                                   "area_before_m2": float(area),
                                   "area_after_m2": float(ellipsoidal_area(np.array([repaired]))[0])})
    geoms, numbers, wkb, rewritten = geoms[keep], numbers[keep], wkb[keep], rewritten[keep]
    if rewritten.any():
        wkb[rewritten] = shapely.to_wkb(geoms[rewritten])
    elif packed is not None:  # the WKB as read, already in one buffer
        wkb = packed if keep.all() else packed.filter(pa.array(keep))
    table, unreadable = wkb_ring_table(wkb)
    if unreadable.any():  # not expected (GEOS read them as polygons), but shapely can take them apart
        table = ring_table(geoms)
    _orientation_repairs(table, numbers, shapefile, result)
    return geoms, keep, table, table.oriented_ewkb()


def _orientation_repairs(table: RingTable, numbers: np.ndarray, shapefile: bool, result: _ChunkResult) -> None:
    """Record the features whose shells break their format's orientation (the EWKB written from the table
    is oriented anyway). Shapefiles store shells clockwise, other formats counter-clockwise: only a break
    of the file's own convention is a repair worth reporting."""
    misoriented = table.misoriented_rings()
    convention_broken = table.ring_is_shell & (~misoriented if shapefile else misoriented)
    for i in np.flatnonzero(table.geoms_with(convention_broken)):
        result.repairs.append({"feature": int(numbers[i]), "kind": "ring_orientation",
                               "detail": "shell ring had the wrong orientation for its format"})


def _normalise_read_polygons(chunk: RawChunk, src: PlanSource, spec: LayerSpec, result: _ChunkResult
                             ) -> _Features | None:
    """The common case of a polygon chunk read through Arrow, without making geometries: every feature a
    polygon with finite coordinates inside the region (once in EPSG:4490), and each one certainly valid
    (by the compiled check, or by GEOS where that check cannot tell). None when anything else turns up:
    :func:`_normalise` then checks the chunk again with the messages and repairs that calls for."""
    assert src.crs is not None
    if chunk.wkb_arrow is None:
        return None
    projected = not src.crs.crs.equals(STORAGE_CRS, ignore_axis_order=True)
    numbers, attrs, fids, packed = chunk.feature_no, chunk.attributes, chunk.fids, chunk.wkb_arrow
    positions = np.arange(len(numbers)) + max(chunk.start, 0)
    if src.deleted_records:
        live = ~np.isin(numbers, src.deleted_records)
        numbers, attrs, fids, positions = numbers[live], attrs[live], fids[live], positions[live]
        packed = packed.filter(pa.array(live))
    if len(numbers) == 0 or packed.null_count:
        return None
    def to_storage(coords: np.ndarray) -> np.ndarray:  # as shapely.transform moves them; absurd ones to NaN
        return _move(coords, src.crs.crs) if _sane(coords) else np.full_like(coords, np.nan)

    table, unreadable = wkb_ring_table(packed, to_storage if projected else None)
    vertices = np.diff(table.ring_off[table.part_off[table.geom_off]])
    if unreadable.any() or (vertices == 0).any() or not _sane(table.coords):
        return None
    bounds = table.bounds()
    if _outside_region(bounds).any():
        return None
    unsure = ~kernel().certainly_valid(table.coords, table.ring_off, table.part_off, table.geom_off)
    if unsure.any():
        try:
            geoms = shapely.from_wkb(packed.filter(pa.array(unsure)).to_numpy(zero_copy_only=False), on_invalid="raise")
        except shapely.errors.GEOSException:  # an unclosed ring, say
            return None
        if not shapely.is_valid(_to_storage(geoms, src.crs.crs) if projected else geoms).all():
            return None
    result.read += len(numbers)
    result.family = spec.geometry
    _orientation_repairs(table, numbers, src.driver == "ESRI Shapefile", result)
    return _Features(None, table.oriented_ewkb(), numbers, attrs.reset_index(drop=True), positions, fids, bounds,
                     table)


# JSON escapes of the characters that need one (the backslash first), and the control characters that
# would need the \u form, which the fast path leaves to pandas.
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"),
                 ("\f", "\\f"))
_JSON_AWKWARD = "[\\x00-\\x07\\x0b\\x0e-\\x1f]"


def _json_values(column: pd.Series) -> pa.Array | None:
    """One column as JSON values (text), by Arrow compute; None for types left to pandas."""
    try:
        values = pa.array(column, from_pandas=True)  # NaN -> null
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects
        return None
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        data = values.buffers()[2]
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        if ((raw < 0x20) | (raw == ord('"')) | (raw == ord("\\"))).any():  # rare: most text needs no escape
            if pc.any(pc.match_substring_regex(values, _JSON_AWKWARD)).as_py():
                return None
            for plain, escaped in _JSON_ESCAPES:
                values = pc.replace_substring(values, plain, escaped)
        text = pc.binary_join_element_wise(_text('"'), pc.cast(values, pa.large_string()), _text('"'), _text(""))
    elif pa.types.is_integer(kind):
        text = pc.cast(values, pa.large_string())
    elif pa.types.is_floating(kind):
        text = pc.cast(values, pa.large_string())
        integral = pc.match_substring_regex(text, "^-?[0-9]+$")  # 1.0 stays a float: "1.0", not "1"
        text = pc.if_else(integral, pc.binary_join_element_wise(text, _text(".0"), _text("")), text)
        text = pc.if_else(pc.is_finite(values), text, pa.scalar(None, pa.large_string()))
    elif pa.types.is_boolean(kind):
        text = pc.if_else(values, _text("true"), _text("false"))
    else:
        return None
    return pc.fill_null(text, _text("null"))


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _attrs_json(attrs: pd.DataFrame) -> pa.Array:
    """Each row's attributes as a JSON object (Arrow text), composed column by column with Arrow
    compute; pandas writes the rows where a column is of another type (dates) or holds control
    characters."""
    if attrs.shape[1] == 0:
        return pa.array(["{}"] * len(attrs), type=pa.large_string())
    parts: list[Any] = []
    for i, (name, column) in enumerate(attrs.items()):
        values = _json_values(column)
        if values is None:
            return _attrs_json_by_pandas(attrs)
        parts += [_text(("{" if i == 0 else ",") + json.dumps(str(name), ensure_ascii=False) + ":"), values]
    return pc.binary_join_element_wise(*parts, _text("}"), _text(""))


def _attrs_json_by_pandas(attrs: pd.DataFrame) -> pa.Array:
    """Each row's attributes as a JSON object (Arrow text): one JSON-lines text cut at its line ends, as
    JSON escapes every newline inside its strings."""
    text = attrs.reset_index(drop=True).to_json(orient="records", lines=True, force_ascii=False,
                                                date_format="iso").encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(text, np.uint8) == ord("\n"))
    if len(ends) < len(attrs):  # no newline after the last line
        ends = np.append(ends, len(text))
    offsets = np.zeros(len(attrs) + 1, np.int64)
    offsets[1:] = ends - np.arange(len(ends))  # where the rows end once the newlines are gone
    return pa.LargeStringArray.from_buffers(len(attrs), pa.py_buffer(offsets),
                                            pa.py_buffer(text.replace(b"\n", b"")))


def _text_column(attrs: pd.DataFrame, candidates: tuple[str, ...]) -> pd.Series | None:
    name = find_field(list(attrs.columns), candidates)
    return None if name is None else normalise_codes(attrs[name], set())


@dataclass
class _Features:
    geoms: np.ndarray | None  # valid; polygons not yet oriented nor made multi (None: not made)
    ewkb: pa.Array           # what the stores take: multi-geometries, OGC orientation, SRID 4490
    numbers: np.ndarray
    attrs: pd.DataFrame
    positions: np.ndarray
    fids: np.ndarray
    bounds: np.ndarray
    rings: RingTable | None = None


def _normalise(chunk: RawChunk, src: PlanSource, spec: LayerSpec, result: _ChunkResult) -> _Features:
    """Geometry checks and repairs for one chunk: the same function when features are read again."""
    if spec.geometry == "polygon":
        common = _normalise_read_polygons(chunk, src, spec, result)
        if common is not None:
            return common
    chunk.decode()
    positions = np.arange(len(chunk.feature_no)) + max(chunk.start, 0)
    numbers, geoms, attrs, fids, wkb = chunk.feature_no, chunk.geometry, chunk.attributes, chunk.fids, chunk.wkb
    if src.deleted_records:  # the rule: a record flagged deleted in the .dbf is not part of the plan
        live = ~np.isin(numbers, src.deleted_records)
        numbers, geoms, attrs, fids, positions, wkb = (numbers[live], geoms[live], attrs[live], fids[live],
                                                       positions[live], wkb[live])
    result.read += len(numbers)
    if chunk.unreadable:
        raise InputError("unsupported_geometry", file=src.name, got=src.geometry_type or "unknown")
    for n in chunk.unclosed:
        result.repairs.append({"feature": n, "kind": "unclosed_ring", "detail": "ring closed by repeating its first point"})
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for n in numbers[empty]:
        result.rejected.append({"feature": int(n), "reason": "empty", "detail": "NULL or empty geometry"})
    keep = ~empty
    geoms, numbers, fids, positions, wkb = geoms[keep], numbers[keep], fids[keep], positions[keep], wkb[keep]
    attrs = attrs[keep].reset_index(drop=True)
    rewritten = np.zeros(len(geoms), dtype=bool)  # changed since read: their WKB is written again
    if len(geoms):
        geoms, rewritten = _check_types(geoms, numbers, spec, src)
        result.family = spec.geometry
        _check_coordinates(geoms, numbers, src)
        assert src.crs is not None
        if not src.crs.crs.equals(STORAGE_CRS, ignore_axis_order=True):
            geoms = _to_storage(geoms, src.crs.crs)
            rewritten[:] = True
        _check_region(shapely.bounds(geoms), numbers, src)
    if spec.geometry == "polygon":
        packed = None if chunk.wkb_arrow is None else chunk.wkb_arrow.take(pa.array(positions - max(chunk.start, 0)))
        geoms, ok, table, ewkb = _repair_polygons(geoms, wkb, packed, rewritten, numbers,
                                                  src.driver == "ESRI Shapefile", result)
        numbers, attrs, positions, fids = numbers[ok], attrs[ok].reset_index(drop=True), positions[ok], fids[ok]
        return _Features(geoms, ewkb, numbers, attrs, positions, fids,
                         shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4)), table)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    maker = shapely.multilinestrings if spec.geometry == "line" else shapely.multipoints
    multi = np.empty(len(geoms), dtype=object)
    multi[:] = maker(parts, indices=owner) if len(parts) else []
    geoms = multi
    ok = np.ones(len(geoms), dtype=bool)
    if spec.geometry == "line":
        degenerate = shapely.length(geoms) == 0
        for n in numbers[degenerate]:
            result.rejected.append({"feature": int(n), "reason": "empty", "detail": "zero-length line"})
        ok &= ~degenerate
    geoms = geoms[ok]
    ewkb = pa.array(shapely.to_wkb(shapely.set_srid(geoms, STORAGE_EPSG), include_srid=True), type=pa.large_binary())
    return _Features(geoms, ewkb, numbers[ok], attrs[ok].reset_index(drop=True), positions[ok], fids[ok],
                     shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4)))


def _feature_keys(attrs: pd.DataFrame, numbers: np.ndarray, spec: LayerSpec) -> np.ndarray:
    keys = _text_column(attrs, spec.id_fields)
    fallback = numbers.astype(str).astype(object)
    if keys is None:
        return fallback
    values = np.array(keys.to_numpy(dtype=object), dtype=object)
    missing = pd.isna(values)
    values[missing] = fallback[missing]
    return values


def _process_chunk(chunk: RawChunk, src: PlanSource, spec: LayerSpec, code_field: str) -> _ChunkResult:
    """Everything one chunk needs, with no shared state, so chunks can run on several threads."""
    result = _ChunkResult(frame=pd.DataFrame(), start=chunk.start)
    f = _normalise(chunk, src, spec, result)
    result.positions, result.fids, result.bounds = f.positions, f.fids, f.bounds
    if len(f.numbers) == 0:
        return result
    codes = normalise_codes(f.attrs[code_field], set(spec.crosswalk.lookup()))
    unified, match, unknown = classify(codes, spec.crosswalk)
    result.unknown_codes = unknown
    frame = pd.DataFrame({"feature_no": f.numbers.astype(np.int64)})
    frame["feature_key"] = _feature_keys(f.attrs, f.numbers, spec)
    frame["orig_code"] = codes.to_numpy()
    frame["ydyh_code"] = unified.to_numpy()
    frame["ydyh_match"] = match.to_numpy()
    zone = None
    if spec.zone_field is not None:
        zone_col = find_field(list(f.attrs.columns), (spec.zone_field.name, *spec.zone_field.aliases))
        if zone_col is not None:
            zone = normalise_codes(f.attrs[zone_col], set(spec.zone_field.values))
            result.unknown_zones = Counter(str(z) for z in zone if z not in spec.zone_field.values)
    frame["zone_code"] = zone.to_numpy() if zone is not None else None
    admin = _text_column(f.attrs, spec.admin_fields)
    frame["xzqdm"] = admin.to_numpy() if admin is not None else None
    if spec.corridor is not None:
        frame["level"] = codes.to_numpy()
        frame["corridor_m"] = [spec.corridor.width(c) for c in codes]
    else:
        frame["level"] = None
        frame["corridor_m"] = np.nan
    if spec.geometry == "polygon":
        assert f.rings is not None
        frame["area_m2"] = f.rings.areas()
        frame["length_m"] = np.nan
        if spec.coverage:
            result.seg_keys, result.seg_owner = segment_keys(f.rings, f.positions)
    else:
        frame["area_m2"] = np.nan
        frame["length_m"] = geodesic_length(f.geoms) if spec.geometry == "line" else np.nan
    frame["source_attributes"] = pd.arrays.ArrowExtensionArray(_attrs_json(f.attrs))
    area = frame["area_m2"].fillna(0.0).to_numpy()
    length = frame["length_m"].fillna(0.0).to_numpy()
    for (code,), (a, length_sum, count) in _sums_by([frame["ydyh_code"]], area, length).items():
        result.area[code] = [a, length_sum, count]
    columns = [frame[k] for k in ("xzqdm", "ydyh_code", "orig_code", "zone_code")]
    for key, (a, length_sum, _) in _sums_by(columns, area, length).items():
        result.county[key] = [a, length_sum]
    frame[EWKB_COLUMN] = pd.arrays.ArrowExtensionArray(f.ewkb)
    result.frame = frame
    result.loaded = len(frame)
    return result


@dataclass
class _Spilled:
    """An encoded chunk a worker process left in a file of the load's own temporary folder."""

    path: Path


def _sums_by(columns: list[pd.Series], area: np.ndarray, length: np.ndarray
             ) -> dict[tuple[str, ...], tuple[float, float, int]]:
    """Area, length and count summed per distinct combination of ``columns`` (missing values as "")."""
    combined = np.zeros(len(area), dtype=np.int64)
    codes, labels = [], []
    for column in columns:
        code, unique = pd.factorize(column, use_na_sentinel=True)
        codes.append(code + 1)  # 0: missing
        labels.append(["", *(str(u) for u in unique)])
        combined = pd.factorize(combined * (len(unique) + 1) + code + 1)[0]  # kept below the row count
    groups = int(combined.max()) + 1 if len(combined) else 0
    first = np.zeros(groups, dtype=np.int64)
    first[combined[::-1]] = np.arange(len(combined))[::-1]  # a row of each group (the last write wins)
    areas = np.bincount(combined, weights=area, minlength=groups)
    lengths = np.bincount(combined, weights=length, minlength=groups)
    counts = np.bincount(combined, minlength=groups)
    return {tuple(names[code[row]] for names, code in zip(labels, codes, strict=True)): (float(a), float(b), int(n))
            for row, a, b, n in zip(first.tolist(), areas, lengths, counts, strict=True)}


def _check_range(src: PlanSource, spec: LayerSpec, code_field: str, start: int, count: int,
                 encoder: Callable[[pd.DataFrame], Any], spill: Path | None = None) -> _ChunkResult:
    """Read, check and encode features ``start`` to ``start + count``: the unit of parallel work.

    With ``spill``, an encoded chunk in bytes goes to a file there: a worker process's result travels
    through a pipe that the loading process, busy writing, drains slowly, and the worker would wait.
    """
    known_notes = len(src.notes)
    chunk = read_chunk(src, start, count, lazy=True)
    if chunk is None:
        part = _ChunkResult(frame=pd.DataFrame(), start=start)
    else:
        part = _process_chunk(chunk, src, spec, code_field)
    part.notes = src.notes[known_notes:]
    part.frame = encoder(part.frame)
    if spill is not None and isinstance(part.frame, bytes):
        path = spill / f"chunk-{start}.bin"
        path.write_bytes(part.frame)
        part.frame = _Spilled(path)
    return part


def _write(session: LoadSession, payload: Any) -> None:
    if isinstance(payload, _Spilled):
        payload, path = payload.path.read_bytes(), payload.path
        path.unlink()
    session.write(payload)


def _refetch(src: PlanSource, spec: LayerSpec, code_field: str, fids_by_position: np.ndarray):
    """For coverage QC: read features at some positions again and normalise them the same way."""
    def fetch(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raw = read_again(src, fids_by_position[positions], positions)
        f = _normalise(raw, src, spec, _ChunkResult(frame=pd.DataFrame()))
        assert f.geoms is not None  # features read again come through the plain read
        return f.geoms, f.numbers, _feature_keys(f.attrs, f.numbers, spec)
    return fetch


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
        "counts": {"read": tally.read, "loaded": tally.loaded, "rejected": tally.n_rejected,
                   "deleted_records": len(src.deleted_records), "repaired": len(tally.repaired_features)},
        "crs": {"used": src.crs.label, "source": src.crs.source, "guessed": src.crs.guessed,
                "note": src.crs.note},
        "encoding": {"used": src.encoding, "source": src.encoding_source,
                     "guessed": src.encoding_source == "detected"},
        "notes": notes,
        "deleted_records": src.deleted_records[:MAX_REPORTED],
        "rejected": tally.rejected,
        "repairs_by_kind": dict(sorted(tally.repairs_by_kind.items())),
        "repairs": tally.repairs,
        "unknown_codes": dict(sorted(tally.unknown_codes.items())),
        "unknown_zone_codes": dict(sorted(tally.unknown_zones.items())),
        "quality": quality,
        "area_by_class": rows,
        "area_by_county": [{"xzqdm": k[0] or None, "code": k[1] or None, "orig": k[2] or None, "zone": k[3] or None,
                            "area_m2": round(v[0], 3), "length_m": round(v[1], 3)}
                           for k, v in sorted(tally.county.items())],
    }


def _quality(src: PlanSource, spec: LayerSpec, code_field: str, tally: _Tally) -> dict[str, Any]:
    if not (spec.coverage and tally.seg_keys):
        return {"checked": False}
    positions = np.concatenate(tally.positions)
    # positions are read order; features not loaded have no bounds and are never candidates
    size = int(positions.max()) + 1
    fids_by_position = np.full(size, -1, dtype=np.int64)
    bounds_by_position = np.full((size, 4), np.nan)
    fids_by_position[positions] = np.concatenate(tally.fids)
    bounds_by_position[positions] = np.concatenate(tally.bounds)
    found = coverage_findings(tally.seg_keys, tally.seg_owner, bounds_by_position,
                              _refetch(src, spec, code_field, fids_by_position), QC_MIN_AREA_M2)
    return {"checked": True, "min_area_m2": QC_MIN_AREA_M2, **found}


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    """(start, count) of the chunks of ``n`` features: ``size`` each, but the last round is cut in
    smaller pieces, so that less is left to write once every chunk is checked. The last range is open
    ended: a count can exceed what is left (deleted .dbf records shorten the read)."""
    tail_from = max(0, n - WORKERS * size)
    ranges = [(start, size) for start in range(0, tail_from, size)]
    start = ranges[-1][0] + size if ranges else 0
    pieces = max(1, min(2 * WORKERS, (n - start) // 1000))
    cuts = np.linspace(start, n, pieces + 1).round().astype(int)
    ranges += [(int(a), int(b - a)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    last_start, last_count = ranges[-1]
    ranges[-1] = (last_start, max(last_count, size))
    return ranges


def load_plan(store: PlanStore, layer_id: str, path: str | Path, options: LoadOptions | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Load one plan file as a new version of ``layer_id``; return the load report.

    All or nothing: on any error the staged features are discarded, a failed-load audit record is
    written, and the error is raised again. Chunks are checked on worker threads (GEOS releases the
    GIL) while the main thread reads and writes, in order.
    """
    options = options or LoadOptions()
    spec = layer_spec(layer_id)
    path = Path(path)
    meta = LoadMeta(layer=layer_id, label=options.label or "", source_name=path.name, source_sha256="")
    session = store.begin_load(meta, spec.geometry)
    try:
        with tempfile.TemporaryDirectory(prefix="multiplan-load-") as tmp, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="multiplan-write") as writer, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="multiplan-hash") as hasher:
            hashing: Future[str] | None = None
            src = open_plan_source(path, Path(tmp), source_layer=options.source_layer,
                                   encoding=options.encoding, crs=options.crs)
            _check_declared_type(src, spec)
            code_field = class_field_for(spec, src.fields, options.class_field, src.name)
            tally = _Tally()
            # read and check ranges in parallel -> write (one thread, in order): the database works
            # on one chunk while the next ones are read and checked. Large files use processes (the
            # checks are partly Python); small ones threads, which start at once.
            big = options.processes and src.feature_count >= PROCESS_MIN_FEATURES and WORKERS > 1
            pool = (ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")) if big
                    else ThreadPoolExecutor(WORKERS, thread_name_prefix="multiplan-check"))
            checking: deque[Future[_ChunkResult]] = deque()
            writing: deque[Future[None]] = deque()

            def hand_over() -> None:
                part = checking.popleft().result()
                tally.merge(part, src)
                writing.append(writer.submit(_write, session, part.frame))
                while writing and (writing[0].done() or len(writing) > 2):
                    writing.popleft().result()  # raises the write's error, if any
                if progress:
                    progress("read", tally.read, src.feature_count)
            try:
                for start, count in _ranges(src.feature_count, options.chunk_size):
                    checking.append(pool.submit(_check_range, src, spec, code_field, start, count,
                                                session.encoder, Path(tmp) if big else None))
                    while len(checking) > WORKERS:
                        hand_over()
                while checking:
                    hand_over()
                # the file's hash, while the database takes the last chunks (this process is idle then)
                hashing = hasher.submit(_source_hash, path) if path.is_file() else None
                while writing:
                    writing.popleft().result()
            finally:
                for fut in (*checking, *writing):
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
            if tally.loaded == 0:
                raise InputError("all_rejected", file=src.name)
            sealing = writer.submit(session.seal)  # the database indexes while the report is made
            if progress:
                progress("quality", 0, 1)
            quality = _quality(src, spec, code_field, tally)
            if progress:
                progress("quality", 1, 1)
            meta.source_sha256 = hashing.result() if hashing else ""
            summary = _summary(src, spec, meta, code_field, tally, quality)
            earlier = store.versions(layer_id)
            summary["warnings"] = evaluate(layer_id, summary, earlier[-1].report if earlier else None,
                                           load_indicators())
            sealing.result()
        version = session.commit(summary)
    except BaseException as exc:
        if not meta.source_sha256 and path.is_file():  # the failed-load record names the file exactly
            with contextlib.suppress(OSError):
                meta.source_sha256 = _source_hash(path)
        session.abort(f"{type(exc).__name__}: {exc}")
        raise
    return {**summary, "version": version.version, "loaded_at": version.loaded_at}


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False)


#: What the notes of a load report mean, for the people who read it (zh, en).
NOTE_TEXT = {
    "prj_missing": ("没有 .prj 文件,坐标系由坐标范围识别", "no .prj file: the CRS was recognised from the coordinates"),
    "prj_unusable": (".prj 文件内容无效(可能是下载失败的网页),坐标系由坐标范围识别",
                     "the .prj holds no CRS (a failed download?): the CRS was recognised from the coordinates"),
    "cpg_unusable": (".cpg 文件内容无效,编码由属性内容识别", "the .cpg holds no encoding: the encoding was detected from the attributes"),
    "index_restored": ("缺少 .shx 索引,已从 .shp 重建", "the .shx index was missing and was rebuilt from the .shp"),
    "deleted_records_skipped": (".dbf 中标记为删除的记录未入库(见 deleted_records)",
                                "records flagged deleted in the .dbf were not loaded (see deleted_records)"),
    "m_dropped": ("已去除 M 值", "M values dropped"),
    "unclosed_ring": ("有未闭合的环,已闭合", "unclosed rings were closed"),
}
