"""Read a construction project's site boundary (红线) for a site check, whatever form it arrives in.

Formats: GeoJSON, WKT, shapefile (plain or zipped), KML/KMZ, DXF and the 界址点坐标 (boundary-point
coordinate) table as CSV or TXT. Whatever the input, the result is one valid, 2-D, oriented
MultiPolygon in EPSG:4490, or an :class:`InputError` / :class:`CRSError` whose message names the file,
says what is wrong and how to fix it.

Rules worth knowing (see also :func:`read_site`):

* CRS: ``crs=`` wins; else what the file declares (.prj, GeoJSON ``crs`` member, EWKT ``SRID=``; KML is
  lon/lat by definition); else it is recognised from the coordinates (:func:`multiplan.crs.detect_crs`)
  and the guess is announced in ``notes``.
* Rings are numbered 1, 2, ... in reading order across the whole file; messages use these numbers and,
  for tables, the point numbers (点号) of the ring.
* Loose rings (table rings, CAD polylines, closed lines) become polygons by containment: a ring whose
  vertices all lie inside an earlier ring that is a shell is a hole of it; inside a hole it is an island
  (a new part); otherwise a separate part. Tables keep their order (the first ring is the outer
  boundary); CAD rings are taken largest first, because drawing order means nothing in CAD.
* Several features or parts are unioned into one site.
* ``notes`` and ``crs_note`` are rendered in the active language (:func:`multiplan.i18n.language`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import shapely

from multiplan import config
from multiplan.archive import safe_extract
from multiplan.crs import (
    STORAGE_CRS,
    CRSChoice,
    detect_crs,
    ellipsoidal_area,
    parse_crs_option,
    parse_prj_text,
    to_storage,
)
from multiplan.errors import CRSError, InputError, MultiplanError
from multiplan.i18n import message
from multiplan.io import open_plan_source, read_chunks

__all__ = ["SITE_MAX_AREA_M2", "REPAIR_TOLERANCE", "SiteInput", "read_site", "site_from_text"]

#: A "site" larger than this (m²) is refused: it is almost always a wrong CRS or unit, not a project.
SITE_MAX_AREA_M2 = 100e6
#: make_valid may change a polygon's area by at most this fraction, else the repair is refused.
REPAIR_TOLERANCE = 0.01
_NO_AREA = 1e-9  # a ring enclosing less than this fraction of its extent squared encloses nothing

_GEOJSON_SUFFIXES = (".geojson", ".json")
_TABLE_SUFFIXES = (".csv", ".txt")
# What a zip may hold, by preference: a shapefile first (zips are how shapefiles travel), then one
# self-contained file, then a coordinate table (a .txt next to a shapefile is usually a readme).
_ZIP_GROUPS = ((".shp",), (".geojson", ".json", ".kml", ".dxf", ".wkt"), (".csv", ".txt"))
_WKT_START = re.compile(
    r"^\s*(SRID=\d+\s*;\s*)?(MULTI)?(POLYGON|LINESTRING|POINT|GEOMETRYCOLLECTION)\b", re.IGNORECASE)
_SRID = re.compile(r"^\s*SRID=(\d+)\s*;", re.IGNORECASE)
# Fields LIBKML adds to every placemark: display settings, not the project's attributes.
_KML_STYLE_FIELDS = {"id", "timestamp", "begin", "end", "altitudeMode", "tessellate", "extrude", "visibility",
                     "drawOrder", "icon"}
# Layer names CAD drafters give the red line; when a DXF has closed rings on such a layer, only those count.
_REDLINE_LAYER = re.compile(r"红线|用地|界址|征地|red_?line|hongxian|^(yd)?hx$", re.IGNORECASE)


@dataclass(frozen=True)
class SiteInput:
    """A site boundary as read, normalised to EPSG:4490, with how it was read."""

    geometry: shapely.MultiPolygon  # EPSG:4490 lon/lat, valid, 2-D, exterior rings counter-clockwise
    source_name: str                # file name, or "WKT"/"GeoJSON" for text input
    format: str                     # "geojson" | "wkt" | "shapefile" | "kml" | "dxf" | "points"
    crs: str                        # the CRS the input was in, e.g. "EPSG:4525"
    crs_guessed: bool               # True when recognised from the numbers, not declared
    crs_note: str
    repaired: bool                  # True when make_valid had to fix it
    n_rings: int
    attributes: dict                # properties of the first feature if any (e.g. 项目代码), else {}
    notes: tuple[str, ...] = ()     # what the officer should know (guessed CRS, repairs, closed rings)


# --------------------------------------------------------------------------------------------------
# What the readers find: rings in the source CRS, before any check


@dataclass
class _Ring:
    number: int                   # 1-based, in reading order across the whole input
    xy: np.ndarray                # (n, 2) source-CRS vertices, open: the closing vertex is not repeated
    labels: tuple[str, ...]       # one per vertex: the table's 点号, else the 1-based vertex number
    named: bool = False           # labels are point names worth quoting in the ring's description
    lonlat: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))

    def describe(self) -> str:
        if self.named:
            return f"{self.number} ({self.labels[0]}–{self.labels[-1]})"
        return str(self.number)


@dataclass
class _Shapes:
    """Rings found in the input: explicit polygons, loose rings, and whatever cannot be a site."""

    polygons: list[list[_Ring]] = field(default_factory=list)  # shell first, then its holes
    loose: list[_Ring] = field(default_factory=list)           # closed rings with no polygon structure
    others: Counter[str] = field(default_factory=Counter)      # e.g. Point, open LineString
    unclosed: list[int] = field(default_factory=list)          # ring numbers that had to be closed here
    count: int = 0

    def rings(self) -> list[_Ring]:
        return [r for poly in self.polygons for r in poly] + self.loose

    def ring(self, coords: Any, labels: Iterable[str] | None = None, *, named: bool = False,
             note_unclosed: bool = True) -> _Ring | None:
        xy = np.asarray(coords, dtype=float)
        if xy.size == 0:
            return None
        if xy.ndim != 2 or xy.shape[1] < 2:
            raise ValueError("a ring's coordinates are not a list of positions")
        xy = xy[:, :2]  # 2-D: heights have no place in a site boundary
        names = list(labels) if labels is not None else [str(i + 1) for i in range(len(xy))]
        self.count += 1
        if len(xy) > 1 and np.array_equal(xy[0], xy[-1]):
            xy, names = xy[:-1], names[:-1]
        elif note_unclosed and len(xy) > 2:
            self.unclosed.append(self.count)
        return _Ring(self.count, xy, tuple(names), named)

    def add_polygon(self, rings: Iterable[Any]) -> None:
        found = [r for r in (self.ring(c) for c in rings) if r is not None]
        if found:
            self.polygons.append(found)

    def add_line(self, coords: Any) -> None:
        xy = np.asarray(coords, dtype=float)
        if xy.size == 0:
            return
        if xy.ndim == 2 and len(xy) >= 4 and np.array_equal(xy[0, :2], xy[-1, :2]):
            ring = self.ring(xy)
            if ring is not None:
                self.loose.append(ring)
        else:
            self.others["open LineString"] += 1

    def add_shapely(self, geom: shapely.Geometry | None) -> None:
        if geom is None or geom.is_empty:
            return
        kind = geom.geom_type
        if kind == "Polygon":
            self.add_polygon([shapely.get_coordinates(geom.exterior)]
                             + [shapely.get_coordinates(r) for r in geom.interiors])
        elif kind in ("LineString", "LinearRing"):
            self.add_line(shapely.get_coordinates(geom))
        elif kind.startswith("Multi") or kind == "GeometryCollection":
            for part in shapely.get_parts(geom):
                self.add_shapely(part)
        else:
            self.others[kind] += 1

    def add_geojson(self, geom: Any) -> None:
        if geom is None:
            return
        if not isinstance(geom, dict):
            raise ValueError("a geometry is not a JSON object")
        kind, coords = geom.get("type"), geom.get("coordinates")
        if kind == "Polygon":
            self.add_polygon(coords or [])
        elif kind == "MultiPolygon":
            for poly in coords or []:
                self.add_polygon(poly)
        elif kind == "LineString":
            self.add_line(coords or [])
        elif kind == "MultiLineString":
            for line in coords or []:
                self.add_line(line)
        elif kind in ("Point", "MultiPoint"):
            if coords:
                self.others[kind] += 1
        elif kind == "GeometryCollection":
            for part in geom.get("geometries") or []:
                self.add_geojson(part)
        else:
            raise ValueError(f"unknown geometry type {kind!r}")


@dataclass
class _Read:
    """One reader's result: the shapes and everything known about them."""

    shapes: _Shapes
    format: str
    declared: CRSChoice | None = None
    attributes: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    by_area: bool = True        # assemble loose rings largest first (False: keep the input's order)
    degrees_ok: bool = False    # lon/lat is the format's own convention, so recognising degrees is no guess


# --------------------------------------------------------------------------------------------------
# Public API


def read_site(source: str | os.PathLike, crs: str | None = None) -> SiteInput:
    """Read the site boundary in ``source`` and return it normalised to EPSG:4490.

    ``source`` is a .geojson/.json, .wkt, .txt (WKT or a 界址点 table), .csv (界址点 table), .shp,
    .zip (a zipped shapefile, or one other site file), .kml, .kmz or .dxf file. ``crs`` (``EPSG:4525``,
    ``4525`` or any pyproj text) overrides whatever the file declares or its coordinates suggest.
    """
    path = Path(source)
    name = path.name
    if not path.exists():
        raise InputError("file_not_found", file=str(path))
    if not path.is_file():
        raise InputError("site_unsupported_format", file=name)
    if path.stat().st_size == 0:
        raise InputError("file_empty", file=name)
    suffix = path.suffix.lower()
    if suffix in (".zip", ".kmz"):
        with tempfile.TemporaryDirectory(prefix="multiplan-site-") as tmp:
            unpacked = Path(tmp) / "unzipped"
            unpacked.mkdir()
            safe_extract(path, unpacked)
            inner = _site_file_in(unpacked, name)
            display = f"{name}:{inner.relative_to(unpacked).as_posix()}"
            with _naming(name, display):
                read = _read_file(inner, display, Path(tmp))
                return _finish(read, name=display, source_name=name, crs_option=crs)
    with tempfile.TemporaryDirectory(prefix="multiplan-site-") as tmp:
        read = _read_file(path, name, Path(tmp))
        return _finish(read, name=name, source_name=name, crs_option=crs)


def site_from_text(text: str, crs: str | None = None) -> SiteInput:
    """Read a site boundary given as WKT (or EWKT) or GeoJSON text: a Feature, FeatureCollection or geometry."""
    stripped = text.strip().lstrip("\ufeff")
    name = "GeoJSON" if stripped.startswith("{") else "WKT"
    if not stripped:
        raise InputError("site_empty", file=name)
    read = _parse_geojson(stripped, name) if name == "GeoJSON" else _parse_wkt(stripped, name)
    return _finish(read, name=name, source_name=name, crs_option=crs)


# --------------------------------------------------------------------------------------------------
# Finding the file and its reader


def _read_file(path: Path, name: str, workdir: Path) -> _Read:
    suffix = path.suffix.lower()
    if suffix in _GEOJSON_SUFFIXES:
        return _parse_geojson(_decode_text(path.read_bytes(), name), name)
    if suffix == ".wkt":
        return _parse_wkt(_decode_text(path.read_bytes(), name), name)
    if suffix in _TABLE_SUFFIXES:
        text = _decode_text(path.read_bytes(), name)
        head = text.lstrip("\ufeff \t\r\n")
        if suffix == ".txt" and _WKT_START.match(head):
            return _parse_wkt(head, name)
        if suffix == ".txt" and head.startswith("{"):
            return _parse_geojson(head, name)
        return _parse_table(text, name)
    if suffix == ".shp":
        return _read_shapefile(path, name, workdir)
    if suffix == ".kml":
        return _read_kml(path, name)
    if suffix == ".dxf":
        return _read_dxf(path, name)
    raise InputError("site_unsupported_format", file=name)


def _site_file_in(folder: Path, archive_name: str) -> Path:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    for group in _ZIP_GROUPS:
        found = [p for p in files if p.suffix.lower() in group]
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(p.relative_to(folder).as_posix() for p in found)
            raise InputError("site_zip_many", file=archive_name, names=names)
    if any(p.suffix.lower() == ".dbf" for p in files):
        raise InputError("missing_sidecar", file=archive_name, ext=".shp")
    raise InputError("site_zip_no_site", file=archive_name)


@contextlib.contextmanager
def _naming(archive: str, display: str) -> Iterator[None]:
    """Re-raise errors about a file inside an archive under the name the user knows: ``archive:inner``."""
    try:
        yield
    except MultiplanError as exc:
        named = exc.params.get("file")
        if isinstance(named, str) and not named.startswith(archive):
            raise type(exc)(exc.key, **{**exc.params, "file": display}) from exc
        raise


def _decode_text(raw: bytes, name: str) -> str:
    """Text of a small file: UTF-16 or UTF-8 (with or without BOM), else GBK (as GB18030, its superset)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text"
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            pass
    raise InputError("site_encoding", file=name)


# --------------------------------------------------------------------------------------------------
# GeoJSON and WKT


def _parse_geojson(text: str, name: str) -> _Read:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("site_text_unreadable", file=name, detail=str(exc)) from exc
    if not isinstance(obj, dict):
        raise InputError("site_text_unreadable", file=name, detail="the JSON is not an object")
    read = _Read(_Shapes(), "geojson", degrees_ok=True)
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features") or []
    elif kind == "Feature":
        features = [obj]
    else:
        features = [{"type": "Feature", "geometry": obj, "properties": None}]
    try:
        for feature in features:
            if not isinstance(feature, dict):
                raise ValueError("a feature is not a JSON object")
            if not read.attributes and isinstance(feature.get("properties"), dict):
                read.attributes = dict(feature["properties"])
            read.shapes.add_geojson(feature.get("geometry"))
    except (ValueError, TypeError) as exc:
        raise InputError("site_text_unreadable", file=name, detail=str(exc)) from exc
    read.declared = _geojson_crs(obj, read)
    return read


def _geojson_crs(obj: dict, read: _Read) -> CRSChoice | None:
    """The CRS a GeoJSON's (pre-RFC 7946) ``crs`` member declares, if it is readable."""
    member = obj.get("crs")
    if not isinstance(member, dict):
        return None
    props = member.get("properties") or {}
    text = props.get("name") or (f"EPSG:{props['code']}" if "code" in props else None)
    try:
        return CRSChoice(pyproj.CRS.from_user_input(text), "file", "GeoJSON crs")
    except (pyproj.exceptions.CRSError, TypeError):
        read.notes.append(message("site_crs_unusable", how=f"GeoJSON crs {text!r}"))
        return None


def _parse_wkt(text: str, name: str) -> _Read:
    read = _Read(_Shapes(), "wkt")
    srid = _SRID.match(text)
    if srid:
        text = text[srid.end():]
        try:
            read.declared = CRSChoice(pyproj.CRS.from_epsg(int(srid.group(1))), "file", "SRID")
        except pyproj.exceptions.CRSError:
            read.notes.append(message("site_crs_unusable", how=f"SRID={srid.group(1)}"))
    # one geometry, or one per line (a common way to list several parcels)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    pieces = lines if len(lines) > 1 and all(_WKT_START.match(line) for line in lines) else [text]
    for piece in pieces:
        read.shapes.add_shapely(_wkt_geometry(piece, name, read))
    return read


def _wkt_geometry(text: str, name: str, read: _Read) -> shapely.Geometry:
    with np.errstate(invalid="ignore"):  # NaN coordinates are reported as such later
        try:
            return shapely.from_wkt(text)
        except shapely.errors.GEOSException as exc:
            if "closed" not in str(exc):
                raise InputError("site_text_unreadable", file=name, detail=str(exc).splitlines()[0]) from exc
        read.notes.append(message("site_note_closed_any"))
        return shapely.from_wkt(text, on_invalid="fix")


# --------------------------------------------------------------------------------------------------
# Shapefile, KML, DXF (through GDAL)


def _read_shapefile(shp: Path, name: str, workdir: Path) -> _Read:
    # io checks sidecars, record counts and the .dbf encoding; it would also settle the CRS, but the
    # site rules for that live here, so it gets a placeholder and the .prj is read below.
    src = open_plan_source(shp, workdir, crs=STORAGE_CRS)
    read = _Read(_Shapes(), "shapefile")
    prj = next((p for p in (shp.with_suffix(".prj"), shp.with_suffix(".PRJ")) if p.exists()), None)
    if prj is not None:
        declared = parse_prj_text(prj.read_bytes()[:100_000].decode("utf-8", errors="replace"))
        if declared is not None:
            read.declared = CRSChoice(declared, "prj", ".prj")
        else:
            read.notes.append(message("site_crs_unusable", how=".prj"))
    for chunk in read_chunks(src):
        if not read.attributes and len(chunk.attributes):
            read.attributes = _plain(chunk.attributes.iloc[0].to_dict())
        for geom in chunk.geometry:
            read.shapes.add_shapely(geom)
        if chunk.unreadable:
            read.shapes.others["unreadable geometry"] += len(chunk.unreadable)
        if chunk.unclosed:
            read.notes.append(message("site_note_closed_any"))
    return read


def _gdal_read(path: Path, name: str, layer: str | None = None) -> tuple[dict, list, np.ndarray]:
    """Fields, field values and shapely geometries of one layer; GDAL's chatter stays out of the way."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta, _fids, wkb, values = pyogrio.raw.read(path, layer=layer, force_2d=True, return_fids=True)
    except Exception as exc:  # GDAL raises several types for a broken file
        raise InputError("read_failed", file=name, detail=str(exc).splitlines()[0]) from exc
    with np.errstate(invalid="ignore"):
        geoms = shapely.from_wkb(wkb, on_invalid="fix")
    return meta, values, geoms


def _read_kml(path: Path, name: str) -> _Read:
    # KML is lon/lat on WGS 84 by definition; at site scale that is CGCS2000 (they differ by centimetres).
    read = _Read(_Shapes(), "kml", declared=CRSChoice(STORAGE_CRS, "format", "KML"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layers = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:
        raise InputError("read_failed", file=name, detail=str(exc).splitlines()[0]) from exc
    for layer in layers:  # each KML folder is a layer
        meta, values, geoms = _gdal_read(path, name, layer)
        for i, geom in enumerate(geoms):
            if not read.attributes and geom is not None:
                row = {str(f): col[i] for f, col in zip(meta["fields"], values, strict=True)
                       if str(f) not in _KML_STYLE_FIELDS}
                read.attributes = {k: v for k, v in _plain(row).items() if v not in (None, "")}
            read.shapes.add_shapely(geom)
    return read


def _read_dxf(path: Path, name: str) -> _Read:
    meta, values, geoms = _gdal_read(path, name)
    fields = [str(f) for f in meta["fields"]]
    layers = [str(v) for v in values[fields.index("Layer")]] if "Layer" in fields else [""] * len(geoms)
    read = _Read(_Shapes(), "dxf")
    on_redline = [i for i, layer in enumerate(layers) if _is_redline_layer(layer)]
    if on_redline and len(on_redline) < len(geoms):
        # a site plan also draws buildings, roads and a title frame: the red-line layer is the site
        shapes = _cad_shapes(geoms[on_redline])
        if shapes.rings():
            read.shapes = shapes
            names = sorted({_demojibake(layers[i]) for i in on_redline})
            read.notes.append(message("site_note_dxf_layer", layer=", ".join(names)))
    if not read.shapes.rings():
        read.shapes = _cad_shapes(geoms)
    shapes = read.shapes
    ignored = sum(shapes.others.values())
    if not shapes.rings():
        if shapes.others.get("open LineString"):
            raise InputError("site_dxf_no_ring", file=name, count=shapes.others["open LineString"])
        raise InputError("site_empty", file=name)
    if ignored:  # text, blocks and open lines are drawing furniture, not the boundary
        read.notes.append(message("site_note_dxf_ignored", count=ignored))
        shapes.others.clear()
    return read


def _cad_shapes(geoms: Iterable[shapely.Geometry | None]) -> _Shapes:
    shapes = _Shapes()
    for geom in geoms:
        shapes.add_shapely(geom)
    return shapes


def _demojibake(text: str) -> str:
    """A DXF layer name GDAL decoded with the wrong code page (no $DWGCODEPAGE), if it can be undone."""
    try:
        raw = text.encode("cp1252")
    except UnicodeEncodeError:
        return text
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            pass
    return text


def _is_redline_layer(layer: str) -> bool:
    return bool(_REDLINE_LAYER.search(layer) or _REDLINE_LAYER.search(_demojibake(layer)))


def _plain(row: dict) -> dict:
    """Attribute values as plain Python (numpy scalars unwrapped, NaN as None)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[str(key)] = value
    return out


# --------------------------------------------------------------------------------------------------
# The 界址点坐标 table

_ROLE_NAMES = {
    "point": {"点号", "点名", "界址点号", "界址点", "点", "序号", "编号", "点位", "name", "id", "point", "pt", "no"},
    "ring": {"圈号", "环号", "圈", "环", "地块圈号", "ring", "part", "loop"},
    "x": {"x", "x坐标"},        # X is the northing in Chinese surveying; the numbers may say otherwise
    "y": {"y", "y坐标"},
    "north": {"北坐标", "纵坐标", "北", "n", "northing", "north"},
    "east": {"东坐标", "横坐标", "东", "e", "easting", "east"},
    "lat": {"纬度", "lat", "latitude"},
    "lon": {"经度", "lon", "lng", "long", "longitude"},
}
_COORD_ROLES = ("x", "y", "north", "east", "lat", "lon")
_UNITS = re.compile(r"[(（\[].*?[)）\]]")  # "X(m)", "Y坐标（米）"
_INTEGER = re.compile(r"^\d+$")
_BREAK, _BLANK = "break", "blank"


@dataclass
class _Row:
    line: int
    fields: list[str]


@dataclass
class _Point:
    line: int
    label: str
    ring: str | None
    a: float   # first coordinate column (X)
    b: float   # second coordinate column (Y)


@dataclass
class _Layout:
    a: int
    b: int
    label: int | None = None
    ring: int | None = None
    a_role: str = "x"
    header: tuple[str, str] = ("X", "Y")


def _parse_table(text: str, name: str) -> _Read:
    events = list(_table_events(text))
    rows = [e for e in events if isinstance(e, _Row)]
    data_start = next((i for i, r in enumerate(rows) if _float_count(r.fields) >= 2), None)
    if data_start is None:
        if rows:
            raise InputError("site_table_bad_row", file=name, lines=str(rows[0].line), text=_quote(rows[0]))
        raise InputError("site_empty", file=name)
    header = rows[data_start - 1].fields if data_start else None
    data = rows[data_start:]
    layout = _layout(header, data)
    points: list[_Point] = []
    bad: list[_Row] = []
    for row in data:
        point = _table_point(row, layout)
        if point is None:
            bad.append(row)
        else:
            points.append(point)
    if bad:
        lines = ", ".join(str(r.line) for r in bad[:10]) + (" …" if len(bad) > 10 else "")
        raise InputError("site_table_bad_row", file=name, lines=lines, text=_quote(bad[0]))
    read = _Read(_Shapes(), "points", by_area=False)
    east_first = _easting_first(np.array([p.a for p in points]), np.array([p.b for p in points]), layout.a_role)
    if east_first and layout.a_role in ("x", "north", "lat"):
        read.notes.append(message("site_note_axes", first=layout.header[0], second=layout.header[1]))
    by_line = {p.line: p for p in points}
    for ring_points in _table_rings(events, by_line):
        a = np.array([p.a for p in ring_points])
        b = np.array([p.b for p in ring_points])
        xy = np.column_stack([a, b] if east_first else [b, a])  # always (easting, northing)
        labels = [p.label or f"#{p.line}" for p in ring_points]
        ring = read.shapes.ring(xy, labels, named=True, note_unclosed=False)
        if ring is not None:
            read.shapes.loose.append(ring)
    return read


def _table_events(text: str) -> Iterator[_Row | str]:
    """Data rows, blank lines, and ring breaks (separator, section and parcel lines)."""
    lines = text.lstrip("\ufeff").splitlines()
    plain = [line.replace("，", ",") for line in lines]
    content = [line for line in plain if line.strip() and _line_kind(line.strip()) == "row"]
    if any("," in line for line in content):
        split = _splitter(",")
    elif any("\t" in line for line in content):
        split = _splitter("\t")
    elif any(";" in line for line in content):
        split = _splitter(";")
    else:
        split = str.split
    for number, line in enumerate(plain, start=1):
        stripped = line.strip()
        if not stripped:
            yield _BLANK
        elif _line_kind(stripped) == "break":
            yield _BREAK
        else:
            yield _Row(number, split(stripped))


def _line_kind(line: str) -> str:
    # "*", "#", "---" between rings; "[地块坐标]" sections, "key=value" metadata and parcel headers
    # ending in "@" in 国土 exchange files: all of them end a ring
    if (line.startswith(("#", "*", "//")) or re.fullmatch(r"[\W_]+", line)
            or (line.startswith("[") and line.endswith("]")) or "=" in line or line.endswith("@")):
        return "break"
    return "row"


def _splitter(sep: str):
    def split(line: str) -> list[str]:
        return [f.strip().strip("\"'") for f in line.split(sep)]
    return split


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _float_count(fields: list[str]) -> int:
    return sum(_number(f) is not None for f in fields)


def _quote(row: _Row) -> str:
    text = " ".join(row.fields)
    return text if len(text) <= 60 else text[:57] + "..."


def _header_role(name: str) -> str | None:
    key = _UNITS.sub("", name).strip().lower().replace(" ", "")
    for role, names in _ROLE_NAMES.items():
        if key in names:
            return role
    return None


def _layout(header: list[str] | None, data: list[_Row]) -> _Layout:
    """Which columns hold the point number, the ring number and the two coordinates."""
    roles = [_header_role(h) for h in header] if header else []
    coords = [i for i, r in enumerate(roles) if r in _COORD_ROLES]
    if len(coords) == 2:
        layout = _Layout(coords[0], coords[1], a_role=roles[coords[0]] or "x",
                         header=(header[coords[0]], header[coords[1]]))  # type: ignore[index]
        unnamed_first = coords[0] > 0 and roles[0] is None
        layout.label = roles.index("point") if "point" in roles else (0 if unnamed_first else None)
        layout.ring = roles.index("ring") if "ring" in roles else None
        return layout
    layout = _data_layout(data)
    if "point" in roles:
        layout.label = roles.index("point")
    if "ring" in roles:
        layout.ring = roles.index("ring")
    return layout


def _data_layout(data: list[_Row]) -> _Layout:
    """Columns found from the numbers: the first pair that looks like coordinates, the point number before it.

    Coordinates are a pair of projected values (both at least 1e4) or a latitude and a longitude in the
    region. A column of small integers between the point number and the coordinates is a ring number
    (国土 exchange files: 点号, 圈号, X, Y) when every ring it makes has at least 3 points.
    """
    first = data[0].fields
    start = 1 if len(first) >= 3 else 0
    candidates = [*range(start, len(first) - 1), *([0] if start else [])]  # point number first, else plain X, Y
    c = next((i for i in candidates if _coordinate_pair(first[i], first[i + 1])), start)
    layout = _Layout(c, c + 1, label=0 if c > 0 else None)
    if c >= 2:
        values = [r.fields[c - 1] if len(r.fields) > c - 1 else "" for r in data]
        runs = [len(list(run)) for _, run in itertools.groupby(values)]
        if all(_INTEGER.match(v) for v in values) and min(runs) >= 3:
            layout.ring = c - 1
    return layout


def _coordinate_pair(first: str, second: str) -> bool:
    a, b = _number(first), _number(second)
    if a is None or b is None:
        return False
    if abs(a) >= 1e4 and abs(b) >= 1e4:
        return True
    return _kind(np.array([a])) != "unknown" and _kind(np.array([b])) != "unknown"


def _table_point(row: _Row, layout: _Layout) -> _Point | None:
    need = max(i for i in (layout.a, layout.b, layout.label, layout.ring) if i is not None)
    if len(row.fields) <= need:
        return None
    a, b = _number(row.fields[layout.a]), _number(row.fields[layout.b])
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return None
    label = row.fields[layout.label] if layout.label is not None else ""
    ring = row.fields[layout.ring] if layout.ring is not None else None
    return _Point(row.line, label, ring, a, b)


def _kind(values: np.ndarray) -> str:
    """What a coordinate column holds, judged by magnitude alone (Hainan, CGCS2000)."""
    if np.all((values >= 1e7) & (values < 1e8)):
        return "easting"   # 8 digits: an easting with its zone prefix (36, 37; 19 for 6-degree zones)
    if np.all((values >= 1e6) & (values < 1e7)):
        return "northing"  # 7 digits: eastings never have 7 (500 km false easting, or 8 with a prefix)
    if np.all((values >= 3.0) & (values <= 20.5)):
        return "northing"  # a latitude in the region
    if np.all((values >= 107.5) & (values <= 118.5)):
        return "easting"   # a longitude in the region
    return "unknown"       # 6 digits: an easting on the island, but a northing near the southern reefs


def _easting_first(a: np.ndarray, b: np.ndarray, a_role: str) -> bool:
    """Whether the first coordinate column (X) holds the eastings.

    The numbers decide when they can: a column of northings (7 digits, or latitudes) or of eastings
    (8 digits with a zone prefix, or longitudes) settles the order, unless both columns claim the same
    kind. Otherwise the header decides when it names the axis (东坐标, E, easting, 经度 first), and
    failing that the Chinese surveying convention holds: X is the northing.
    """
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if ka == "northing" or kb == "easting":
            return False
        if ka == "easting" or kb == "northing":
            return True
    return a_role in ("east", "lon", "y")


def _table_rings(events: list[_Row | str], points: dict[int, _Point]) -> Iterator[list[_Point]]:
    """Split the points into rings: at breaks, ring-number changes, and after the first point comes back.

    Blank lines are breaks too, unless they sit between most rows: then they are doubled line ends
    ("\\r\\r\\n" from Windows tools), not separators.
    """
    rows_at = [i for i, e in enumerate(events) if isinstance(e, _Row) and e.line in points]
    inner = events[rows_at[0]:rows_at[-1]] if rows_at else []
    blank_breaks = sum(e == _BLANK for e in inner) < (len(rows_at) - 1) / 2
    ring: list[_Point] = []
    for event in events:
        if isinstance(event, _Row):
            point = points.get(event.line)
            if point is None:  # the header or a title line
                continue
            if ring and point.ring != ring[-1].ring:
                yield ring
                ring = []
            if len(ring) >= 3 and (point.a, point.b) == (ring[0].a, ring[0].b):
                yield ring  # the first point repeated closes the ring; the next point starts a new one
                ring = []
                continue
            ring.append(point)
        elif event == _BREAK or blank_breaks:
            if ring:
                yield ring
            ring = []
    if ring:
        yield ring


# --------------------------------------------------------------------------------------------------
# From rings to one checked site


def _finish(read: _Read, *, name: str, source_name: str, crs_option: str | None) -> SiteInput:
    shapes = read.shapes
    notes = list(read.notes)
    rings = shapes.rings()
    if shapes.others:
        got = ", ".join(f"{kind} ×{n}" for kind, n in shapes.others.items())
        raise InputError("site_wrong_geometry", file=name, got=got)
    if not rings:
        raise InputError("site_empty", file=name)
    bad = [r for r in rings if not np.isfinite(r.xy).all()]
    if bad:
        raise InputError("site_bad_coordinates", file=name, rings=", ".join(r.describe() for r in bad))
    for ring in rings:
        distinct = len(np.unique(ring.xy, axis=0))
        if distinct < 3:
            raise InputError("site_few_points", file=name, ring=ring.describe(), count=distinct)
    # in the source CRS, where collinear points are still exactly collinear (lon/lat would bend them)
    outlines = shapely.make_valid(np.array([shapely.Polygon(r.xy) for r in rings], dtype=object))
    spans = np.array([np.ptp(r.xy, axis=0).max() for r in rings])
    flat = np.flatnonzero(shapely.area(outlines) <= _NO_AREA * spans**2)
    if len(flat):
        raise InputError("site_ring_no_area", file=name, ring=rings[flat[0]].describe())
    if shapes.unclosed:
        notes.append(message("site_note_closed", rings=_numbers(shapes.unclosed)))

    choice = _choose_crs(read, rings, name, crs_option)
    if choice.guessed:
        notes.append(message("site_crs_guessed", crs=choice.label, how=choice.note))
    _to_storage(rings, choice, name)

    polygons = list(shapes.polygons) + _assemble(shapes.loose, read.by_area, notes)
    repaired = False
    parts = []
    for rings_of_polygon in polygons:
        polygon, fixed = _checked_polygon(rings_of_polygon, name, notes)
        repaired |= fixed
        parts.append(polygon)
    if len(parts) > 1:
        notes.append(message("site_note_parts", count=len(parts)))
        merged = shapely.union_all(parts)
        pieces = shapely.get_parts(merged)
        parts = list(pieces[shapely.get_type_id(pieces) == 3])
    site = shapely.orient_polygons(shapely.multipolygons(parts), exterior_cw=False)
    if site.is_empty:
        raise InputError("site_empty", file=name)
    area = float(ellipsoidal_area(np.array([site]))[0])
    if area > SITE_MAX_AREA_M2:
        raise InputError("site_too_large", file=name, area=area / 1e6, limit=SITE_MAX_AREA_M2 / 1e6)
    polys = shapely.get_parts(site)
    return SiteInput(
        geometry=site,
        source_name=source_name,
        format=read.format,
        crs=choice.label,
        crs_guessed=choice.guessed,
        crs_note=_crs_note(choice),
        repaired=repaired,
        n_rings=int(len(polys) + shapely.get_num_interior_rings(polys).sum()),
        attributes=read.attributes,
        notes=tuple(notes),
    )


def _choose_crs(read: _Read, rings: list[_Ring], name: str, crs_option: str | None) -> CRSChoice:
    if crs_option is not None:
        return CRSChoice(parse_crs_option(crs_option), "option")
    if read.declared is not None:
        return read.declared
    xy = np.concatenate([r.xy for r in rings])
    bounds = (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))
    choice = detect_crs(bounds)
    if choice is None and -180 <= bounds[0] and bounds[2] <= 180 and -90 <= bounds[1] and bounds[3] <= 90:
        # plainly degrees, just not in Hainan: say that (out of region) rather than "unknown CRS"
        choice = CRSChoice(STORAGE_CRS, "detected", "coordinates are degrees")
    if choice is None:
        raise CRSError("site_crs_unknown", file=name, bounds=_fmt_bounds(bounds))
    if read.degrees_ok and choice.crs.is_geographic:
        return CRSChoice(choice.crs, "format", "GeoJSON (RFC 7946)")  # lon/lat is what GeoJSON means
    return choice


def _crs_note(choice: CRSChoice) -> str:
    if choice.source == "option":
        return message("site_crs_option", crs=choice.label)
    if choice.guessed:
        return message("site_crs_guessed", crs=choice.label, how=choice.note)
    return message("site_crs_declared", crs=choice.label, how=choice.note)


def _to_storage(rings: list[_Ring], choice: CRSChoice, name: str) -> None:
    """Set each ring's lon/lat (EPSG:4490) and refuse a site outside the region."""
    xy = np.concatenate([r.xy for r in rings])
    transformer = to_storage(choice.crs)
    with np.errstate(invalid="ignore"):
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1], errcheck=False)
    lonlat = np.column_stack([lon, lat])
    minx, miny, maxx, maxy = config.REGION_BOUNDS
    inside = np.isfinite(lonlat).all(axis=1) & (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
    if not inside.all():
        source_bounds = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())
        finite = lonlat[np.isfinite(lonlat).all(axis=1)]
        where = (_fmt_bounds((finite[:, 0].min(), finite[:, 1].min(), finite[:, 0].max(), finite[:, 1].max()))
                 if len(finite) else "?")
        raise InputError("site_out_of_region", file=name, crs=choice.label,
                         source_bounds=_fmt_bounds(source_bounds), bounds=where)
    start = 0
    for ring in rings:
        ring.lonlat = lonlat[start:start + len(ring.xy)]
        start += len(ring.xy)


def _assemble(rings: list[_Ring], by_area: bool, notes: list[str]) -> list[list[_Ring]]:
    """Polygons from loose rings by containment (see the module docstring)."""
    if not rings:
        return []
    outlines = np.array([shapely.Polygon(_closed(r.lonlat)) for r in rings], dtype=object)
    areas = shapely.area(outlines)
    bounds = shapely.bounds(outlines)
    order = np.argsort(-areas, kind="stable") if by_area else np.arange(len(rings))
    polygons: list[list[_Ring]] = []
    placed = np.zeros(len(rings), dtype=bool)
    is_shell = np.zeros(len(rings), dtype=bool)
    polygon_of = np.full(len(rings), -1)
    for i in order:
        ring = rings[i]
        # only rings whose box holds this ring's box can hold the ring: test the vertices of those alone
        around = placed & (bounds[:, :2] <= bounds[i, :2]).all(axis=1) & (bounds[:, 2:] >= bounds[i, 2:]).all(axis=1)
        inside = [j for j in np.flatnonzero(around)
                  if shapely.intersects_xy(outlines[j], ring.lonlat[:, 0], ring.lonlat[:, 1]).all()]
        if inside:
            j = min(inside, key=lambda k: areas[k])  # the innermost ring around it
            if _same_points(ring.lonlat, rings[j].lonlat):
                notes.append(message("site_note_duplicate", ring=ring.describe(), same=rings[j].describe()))
                continue
            if is_shell[j]:
                polygons[polygon_of[j]].append(ring)
                placed[i], polygon_of[i] = True, polygon_of[j]
                continue
        # outside every ring, or an island in a hole: a part of its own
        polygons.append([ring])
        placed[i], is_shell[i], polygon_of[i] = True, True, len(polygons) - 1
    return polygons


def _same_points(a: np.ndarray, b: np.ndarray) -> bool:
    ua, ub = np.unique(a, axis=0), np.unique(b, axis=0)
    return ua.shape == ub.shape and bool(np.all(ua == ub))


def _closed(xy: np.ndarray) -> np.ndarray:
    return np.vstack([xy, xy[:1]])


def _checked_polygon(rings: list[_Ring], name: str, notes: list[str]) -> tuple[shapely.Polygon, bool]:
    """A valid polygon from a shell and its holes, repaired if the repair is harmless; (polygon, repaired)."""
    raw = shapely.Polygon(_closed(rings[0].lonlat), [_closed(r.lonlat) for r in rings[1:]])
    if raw.is_valid:
        return raw, False
    reason = shapely.is_valid_reason(raw)
    fixed = shapely.make_valid(raw)
    pieces = shapely.get_parts(fixed)
    pieces = pieces[shapely.get_type_id(pieces) == 3]  # polygonal parts only: the repair's lines are spikes
    ring, points, location = _locate(rings, reason)
    raw_area = raw.area  # |shoelace| of the shell minus those of the holes
    fixed_area = float(shapely.area(pieces).sum())
    if fixed_area == 0:
        raise InputError("site_ring_no_area", file=name, ring=ring)
    if len(pieces) > 1:
        raise InputError("site_self_intersection", file=name, ring=ring, points=points, location=location,
                         pieces=len(pieces))
    change = abs(fixed_area - raw_area) / raw_area if raw_area > 0 else np.inf
    if change > REPAIR_TOLERANCE:
        raise InputError("site_repair_area", file=name, ring=ring, points=points, location=location,
                         percent=min(change * 100, 999.9))
    notes.append(message("site_note_repaired", ring=ring, points=points, percent=change * 100))
    return pieces[0], True


def _locate(rings: list[_Ring], reason: str) -> tuple[str, str, str]:
    """Where a polygon is invalid: (ring description, crossing edges by point labels, lon/lat location)."""
    segments, owner, index = [], [], []
    for k, ring in enumerate(rings):
        xy = ring.lonlat
        segments.append(shapely.linestrings(np.stack([xy, np.roll(xy, -1, axis=0)], axis=1)))
        owner.append(np.full(len(xy), k))
        index.append(np.arange(len(xy)))
    segs, seg_ring, seg_index = np.concatenate(segments), np.concatenate(owner), np.concatenate(index)
    left, right = shapely.STRtree(segs).query(segs, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    n = np.array([len(r.lonlat) for r in rings])[seg_ring[left]]
    same = seg_ring[left] == seg_ring[right]
    gap = seg_index[right] - seg_index[left]
    adjacent = same & ((gap == 1) | (gap == n - 1))  # neighbours always share a vertex
    left, right = left[~adjacent], right[~adjacent]

    def edge(s: int) -> str:
        ring = rings[seg_ring[s]]
        i = seg_index[s]
        return f"{ring.labels[i]}–{ring.labels[(i + 1) % len(ring.labels)]}"

    if len(left):
        first = rings[seg_ring[left[0]]]
        points = "; ".join(f"{edge(a)} × {edge(b)}" for a, b in zip(left[:3], right[:3], strict=True))
        where = shapely.get_coordinates(shapely.intersection(segs[left[0]], segs[right[0]]))[0]
        return first.describe(), points, f"({where[0]:.6f}, {where[1]:.6f})"
    # not a crossing (a hole outside its shell, a disconnected interior): GEOS says what and where
    found = re.search(r"\[([-+\d.eE]+) ([-+\d.eE]+)", reason)
    if not found:
        return rings[0].describe(), reason, "?"
    where = np.array([float(found.group(1)), float(found.group(2))])
    nearest = min(rings, key=lambda r: float(np.min(np.abs(r.lonlat - where).sum(axis=1))))
    return nearest.describe(), reason[:found.start()].strip(), f"({where[0]:.6f}, {where[1]:.6f})"


def _fmt_bounds(bounds: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" if abs(v) >= 1000 else f"{v:.6f}" for v in bounds) + ")"


def _numbers(values: Iterable[int]) -> str:
    values = list(values)
    return ", ".join(str(v) for v in values[:10]) + (" …" if len(values) > 10 else "")
