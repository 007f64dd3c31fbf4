"""Vector tiles of the one map: plan versions, conflict patches and approval sites as Mapbox Vector Tiles.

Tiles are the web-mercator (EPSG:3857) XYZ grid every web map and QGIS use: extent 4096, a buffer of 64
grid units around each tile, one MVT layer per tile named after the plan layer (``conflicts``,
``approvals``). Below :data:`DETAIL_ZOOM` features smaller than a pixel are left out and the rest
simplified to about half a pixel; from there on every feature comes at full detail. EPSG:4490 (CGCS2000)
coordinates are used as WGS 84 ones, as PROJ's ballpark transformation does: they differ by centimetres.

The PostGIS store cuts tiles in SQL (``ST_AsMVT``); everything held in memory — the GeoPackage store's
versions, approval sites, the one map of the OGC API — is a :class:`MemoryLayer`, which also answers
pages of features by bounding box. Memory layers live in :data:`SOURCES`, keyed by what makes them
immutable (a plan version, a detection run, a stamp of the approval records), so they are never stale.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["EXTENT", "BUFFER", "DETAIL_ZOOM", "MAX_ZOOM", "PLAN_PROPERTIES", "CONFLICT_PROPERTIES",
           "APPROVAL_PROPERTIES", "LRUCache", "MemoryLayer", "SOURCES", "tile_bounds", "tile_lonlat_bounds",
           "lonlat_to_tile", "check_tile", "pixel_size", "to_mercator", "to_grid", "encode_layer", "plan_layer",
           "patch_layer", "approvals_frame", "approvals_layer", "approvals_tile"]

EXTENT = 4096
BUFFER = 64
#: From this zoom on, tiles carry every feature unsimplified (a screen pixel is under 2.5 m there).
DETAIL_ZOOM = 16
MAX_ZOOM = 24
#: Tolerance of the simplification below DETAIL_ZOOM, in screen pixels of a 256-pixel tile.
SIMPLIFY_PIXELS = 0.5
#: Half the side of the web-mercator square, in metres (the sphere's radius times pi).
WORLD = 20037508.342789244
EARTH_RADIUS = 6378137.0
MAX_LATITUDE = 85.0511287798066

PLAN_PROPERTIES = ("feature_key", "orig_code", "ydyh_code", "zone_code", "xzqdm", "level")
CONFLICT_PROPERTIES = ("conflict_id", "rule", "severity", "status")
APPROVAL_PROPERTIES = ("code", "name", "status", "latest_verdict")
#: Columns of approval records that memory layers keep (the site is the geometry).
APPROVAL_COLUMNS = ("code", "name", "applicant", "stage", "status", "applied_on", "decided_on", "officer",
                    "notes", "latest_verdict", "updated_at")


# -- the tile grid -----------------------------------------------------------------------------------
def check_tile(z: int, x: int, y: int) -> None:
    """Refuse a tile outside the grid (``ValueError``)."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise ValueError(f"no tile {z}/{x}/{y}: zoom 0-{MAX_ZOOM}, x and y 0-{2 ** min(z, MAX_ZOOM) - 1}")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's bounds in EPSG:3857 metres (minx, miny, maxx, maxy); y counts down from the north.

    >>> tile_bounds(0, 0, 0) == (-WORLD, -WORLD, WORLD, WORLD)
    True
    """
    size = 2 * WORLD / 2 ** z
    minx = -WORLD + x * size
    maxy = WORLD - y * size
    return (minx, maxy - size, minx + size, maxy)


def _lat(y: float) -> float:
    return math.degrees(math.atan(math.sinh(y / EARTH_RADIUS)))


def tile_lonlat_bounds(z: int, x: int, y: int, buffered: bool = False) -> tuple[float, float, float, float]:
    """The tile's bounds in degrees, with the tile's buffer when ``buffered``."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    if buffered:
        pad = (maxx - minx) * BUFFER / EXTENT
        minx, miny, maxx, maxy = minx - pad, max(miny - pad, -WORLD), maxx + pad, min(maxy + pad, WORLD)
    return (minx / WORLD * 180.0, _lat(miny), maxx / WORLD * 180.0, _lat(maxy))


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the zoom-``z`` tile holding a point.

    >>> lonlat_to_tile(110.3, 19.9, 10)
    (825, 454)
    """
    n = 2 ** z
    lat = max(-MAX_LATITUDE, min(MAX_LATITUDE, lat))
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def _mercator_xy(coords: np.ndarray) -> np.ndarray:
    lat = np.clip(coords[:, 1], -MAX_LATITUDE, MAX_LATITUDE)
    out = np.empty_like(coords)
    out[:, 0] = coords[:, 0] * (WORLD / 180.0)
    out[:, 1] = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * EARTH_RADIUS
    return out


def to_mercator(geoms: np.ndarray) -> np.ndarray:
    """Geometries in lon/lat (EPSG:4490 or 4326) in web mercator (EPSG:3857)."""
    return shapely.transform(np.asarray(geoms, dtype=object), _mercator_xy)


def pixel_size(z: int) -> float:
    """One screen pixel of a 256-pixel tile at zoom ``z``, in metres of web mercator."""
    return 2 * WORLD / 2 ** z / 256


# -- caches ---------------------------------------------------------------------------------------
_MISSING = object()


class LRUCache:
    """A thread-safe mapping that forgets the least recently used entry beyond ``maxsize``."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(int(maxsize), 0)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key: Hashable, value: Any) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached value, or ``build()`` stored (two threads may both build; one result is kept)."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = build()
            self.put(key, value)
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


#: Memory layers by what makes them immutable: 12 layers and room for older versions, runs, approvals.
SOURCES = LRUCache(48)


# -- features held in memory ----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A value as JSON and MVT take it: numpy scalars as Python ones, NaN and NA as None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


class MemoryLayer:
    """An immutable set of features (EPSG:4490) held in memory with its spatial indexes.

    It answers what the map needs: the features meeting a bounding box, in order and by page; look-ups
    by a column; bounds per group; and vector tiles, cut from a web-mercator copy made on first use.
    """

    def __init__(self, frame: gpd.GeoDataFrame, tile_properties: Sequence[str] = (), id_column: str | None = None,
                 min_pixels: float = 1.0) -> None:
        self.frame = frame.reset_index(drop=True)
        self.geoms = np.asarray(self.frame.geometry.values, dtype=object)
        self.tile_properties = tuple(tile_properties)
        self.id_column = id_column
        self.min_pixels = min_pixels
        self._tree: shapely.STRtree | None = None
        self._mercator: tuple[np.ndarray, np.ndarray, shapely.STRtree] | None = None
        self._lock = threading.Lock()
        self._derived = LRUCache(4)
        self._columns: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def derived(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A value computed from this layer and something else (e.g. ledger statuses by their stamp):
        ``build()`` once per key; the few latest keys are kept."""
        return self._derived.get_or_build(key, build)

    @property
    def tree(self) -> shapely.STRtree:
        if self._tree is None:
            with self._lock:
                if self._tree is None:
                    self._tree = shapely.STRtree(self.geoms)
        return self._tree

    def matching(self, bbox: Sequence[float] | None = None) -> np.ndarray:
        """Positions (ascending) of the features whose geometry intersects ``bbox`` (lon/lat), or all."""
        if bbox is None:
            return np.arange(len(self.geoms))
        return np.sort(self.tree.query(shapely.box(*bbox), predicate="intersects"))

    def page(self, bbox: Sequence[float] | None, limit: int, offset: int) -> tuple[gpd.GeoDataFrame, int]:
        """Features ``offset`` to ``offset + limit`` of those meeting ``bbox``, and how many meet it."""
        found = self.matching(bbox)
        return self.frame.iloc[found[offset: offset + limit]], len(found)

    def where(self, column: str, value: Any) -> gpd.GeoDataFrame:
        """The features whose ``column`` equals ``value``."""
        if column not in self.frame.columns:
            raise ValueError(f"no column {column!r}")
        return self.frame[self.frame[column] == value]

    def bounds(self, by: str | None = None) -> dict[Any, tuple[float, float, float, float]]:
        """Bounds of all features (key None), or per value of column ``by``."""
        if not len(self.geoms):
            return {}
        b = pd.DataFrame(shapely.bounds(self.geoms), columns=["minx", "miny", "maxx", "maxy"])
        if by is None:
            return {None: (b["minx"].min(), b["miny"].min(), b["maxx"].max(), b["maxy"].max())}
        keys = self.frame[by].astype(object).where(self.frame[by].notna(), None)
        grouped = b.groupby(keys.to_numpy(), dropna=False).agg({"minx": "min", "miny": "min", "maxx": "max",
                                                                "maxy": "max"})
        return {(None if _plain(k) is None else k): tuple(float(v) for v in row)
                for k, row in zip(grouped.index, grouped.to_numpy(), strict=True)}

    def _tile_columns(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            self._columns = {c: self.frame[c].to_numpy(dtype=object) for c in self.tile_properties
                             if c in self.frame.columns}
        return self._columns

    def _mercator_index(self) -> tuple[np.ndarray, np.ndarray, shapely.STRtree]:
        if self._mercator is None:
            with self._lock:
                if self._mercator is None:
                    merc = to_mercator(self.geoms)
                    self._mercator = (merc, shapely.bounds(merc), shapely.STRtree(merc))
        return self._mercator

    def tile(self, name: str, z: int, x: int, y: int, extra: dict[str, Sequence[Any]] | None = None) -> bytes:
        """The features meeting tile z/x/y as a Mapbox Vector Tile layer ``name`` (b"" when none).

        ``extra`` adds properties that are not columns of the frame (e.g. a conflict's current status),
        aligned with the features.
        """
        check_tile(z, x, y)
        merc, bounds, tree = self._mercator_index()
        tb = tile_bounds(z, x, y)
        pad = (tb[2] - tb[0]) * BUFFER / EXTENT
        clip = (tb[0] - pad, tb[1] - pad, tb[2] + pad, tb[3] + pad)
        found = np.sort(tree.query(shapely.box(*clip)))
        if z < DETAIL_ZOOM and self.min_pixels > 0 and len(found):
            b = bounds[found]
            found = found[np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= self.min_pixels * pixel_size(z)]
        if not len(found):
            return b""
        parts = shapely.clip_by_rect(merc[found], *clip)
        if z < DETAIL_ZOOM:
            parts = shapely.simplify(parts, SIMPLIFY_PIXELS * pixel_size(z), preserve_topology=True)
        parts = to_grid(parts, tb)
        keep = ~shapely.is_empty(parts)
        if not keep.any():
            return b""
        columns = {c: values[found] for c, values in self._tile_columns().items()}
        for key, values in (extra or {}).items():
            columns[key] = np.asarray(values, dtype=object)[found]
        ids = self.frame[self.id_column].to_numpy()[found] if self.id_column else None
        features = []
        for i in np.flatnonzero(keep):
            properties = {k: _plain(v[i]) for k, v in columns.items()}
            feature = {"geometry": parts[i], "properties": {k: v for k, v in properties.items() if v is not None}}
            if ids is not None:
                feature["id"] = int(ids[i])
            features.append(feature)
        return encode_layer(name, features)


def to_grid(geoms: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Web-mercator geometries in the tile's integer grid (0-EXTENT from the south-west corner), made valid on
    that grid: what collapses there (a sliver, a polygon under a grid cell) is gone, as ST_AsMVTGeom does."""
    minx, miny, maxx, maxy = bounds
    scale = np.array([EXTENT / (maxx - minx), EXTENT / (maxy - miny)])
    shifted = shapely.transform(geoms, lambda c: (c - (minx, miny)) * scale)
    return shapely.set_precision(shifted, 1.0)


def encode_layer(name: str, features: list[dict[str, Any]]) -> bytes:
    """One MVT layer from features already in the tile's grid (:func:`to_grid`)."""
    import mapbox_vector_tile
    from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid

    return mapbox_vector_tile.encode([{"name": name, "features": features}], default_options={
        "extents": EXTENT, "on_invalid_geometry": on_invalid_geometry_make_valid})


def plan_layer(frame: gpd.GeoDataFrame) -> MemoryLayer:
    """A plan version as a memory layer: tiles carry PLAN_PROPERTIES, with the feature number as id."""
    return MemoryLayer(frame, PLAN_PROPERTIES, id_column="feature_no")


def patch_layer(frame: gpd.GeoDataFrame) -> MemoryLayer:
    """A detection run's conflict patches as a memory layer (the status comes from the ledger, as ``extra``)."""
    return MemoryLayer(frame, CONFLICT_PROPERTIES)


# -- approval sites -----------------------------------------------------------------------------------
def approvals_frame(records: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    """Approval records that have a site, as a frame (site geometry in EPSG:4490)."""
    sited = [r for r in records if r.get("site") is not None and not r["site"].is_empty]
    data = {c: pd.Series([r.get(c) for r in sited], dtype=object) for c in APPROVAL_COLUMNS}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([r["site"] for r in sited], crs=4490))


def approvals_layer(store: Any) -> MemoryLayer:
    """The approval sites as a memory layer, rebuilt when the approval records or their checks change."""
    from multiplan.approvals import list_approvals

    stamp = store.change_stamp("approvals")
    # sites are small: they are drawn at every zoom rather than left out below a pixel
    return SOURCES.get_or_build((store.url, "approvals", stamp), lambda: MemoryLayer(
        approvals_frame(list_approvals(store)), APPROVAL_PROPERTIES, min_pixels=0))


def approvals_tile(store: Any, z: int, x: int, y: int) -> bytes:
    """Tile z/x/y of the approval sites (MVT layer ``approvals``)."""
    return approvals_layer(store).tile("approvals", z, x, y)
