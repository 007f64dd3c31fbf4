"""CRS recognition for Hainan's plan files and ellipsoidal (CGCS2000) areas."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyproj
import shapely

from multiplan import config
from multiplan.errors import CRSError
from multiplan.overlay import threads

STORAGE_EPSG = 4490
STORAGE_CRS = pyproj.CRS.from_epsg(STORAGE_EPSG)

# CGCS2000 ellipsoid (same a and f as GRS80).
_A = 6378137.0
_F = 1 / 298.257222101
_E2 = _F * (2 - _F)
_E = np.sqrt(_E2)

SQM_PER_MU = 2000.0 / 3.0
SQM_PER_HA = 10_000.0


@dataclass(frozen=True)
class CRSChoice:
    """The CRS a file is read in, and how it was decided."""

    crs: pyproj.CRS
    source: str  # "prj", "option", "detected"
    note: str = ""

    @property
    def guessed(self) -> bool:
        return self.source == "detected"

    @property
    def label(self) -> str:
        epsg = self.crs.to_epsg(min_confidence=70)
        return f"EPSG:{epsg}" if epsg else self.crs.name


def parse_crs_option(value: str) -> pyproj.CRS:
    """Parse a --crs option (``EPSG:4525``, ``4525`` or any pyproj-readable text)."""
    text = value.strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError("crs_bad_option", value=value, detail=str(exc).splitlines()[0]) from exc


def parse_prj_text(text: str) -> pyproj.CRS | None:
    """A CRS from the text of a .prj file, or None when the text is not a CRS (HTML, junk)."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped or "<" in stripped[:200]:
        return None
    try:
        return pyproj.CRS.from_user_input(stripped)
    except pyproj.exceptions.CRSError:
        return None


def transformer(source: pyproj.CRS | int, target: pyproj.CRS | int) -> pyproj.Transformer:
    """The (x, y order) transformer between two CRSs (or EPSG codes), built once per pair: building one
    costs more than transforming a site's few hundred points."""
    def text(crs: pyproj.CRS | int) -> str:
        return f"EPSG:{crs}" if isinstance(crs, int) else (crs.srs or crs.to_wkt())
    return _transformer(text(source), text(target))


@functools.lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(source), pyproj.CRS.from_user_input(target),
                                       always_xy=True)


def to_storage(crs: pyproj.CRS) -> pyproj.Transformer:
    """The transformer from ``crs`` to EPSG:4490."""
    return transformer(crs, STORAGE_CRS)


def _lonlat(crs: pyproj.CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return to_storage(crs).transform(x, y)


def _inside(bounds: tuple[float, float, float, float], lon: np.ndarray, lat: np.ndarray) -> bool:
    minx, miny, maxx, maxy = bounds
    return bool(np.all(np.isfinite(lon)) and np.all((lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)))


def detect_crs(bounds: tuple[float, float, float, float]) -> CRSChoice | None:
    """Recognise a CGCS2000 CRS from a layer's bounds (DOMAIN.md §6), or None.

    Degrees -> EPSG:4490; 8-digit eastings with zone prefix 36/37 (3-degree) or 19 (6-degree) ->
    EPSG:4524/4525/4497; 6-digit eastings -> the 3-degree zone (EPSG:4545/4546) that puts the data
    on Hainan. EPSG:4508 (6-degree, CM 111E) is the same projection as EPSG:4546.
    """
    minx, miny, maxx, maxy = bounds
    corners_x = np.array([minx, maxx, minx, maxx, (minx + maxx) / 2])
    corners_y = np.array([miny, miny, maxy, maxy, (miny + maxy) / 2])
    if not np.all(np.isfinite(corners_x)) or not np.all(np.isfinite(corners_y)):
        return None
    if -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90:
        candidates = [(4490, "coordinates are degrees")]
    elif 1e7 <= minx and maxx < 1e8:
        prefix = int(minx // 1e6)
        by_prefix = {36: 4524, 37: 4525, 19: 4497}
        if prefix not in by_prefix or int(maxx // 1e6) != prefix:
            return None
        candidates = [(by_prefix[prefix], f"eastings carry zone prefix {prefix}")]
    elif 1e5 <= minx and maxx < 1e6:
        candidates = [(4546, "6-digit eastings, CM 111E"), (4545, "6-digit eastings, CM 108E")]
    else:
        return None
    for epsg, why in candidates:
        crs = pyproj.CRS.from_epsg(epsg)
        lon, lat = _lonlat(crs, corners_x, corners_y)
        if _inside(config.ISLAND_BOUNDS, lon[-1:], lat[-1:]) or (
                len(candidates) == 1 and _inside(config.REGION_BOUNDS, lon, lat)):
            note = why + (" (EPSG:4508 is the same projection)" if epsg == 4546 else "")
            return CRSChoice(crs, "detected", note)
    return None


def _authalic(lat_rad: np.ndarray) -> np.ndarray:
    """q(φ) of the authalic-latitude transformation (Snyder 1987, eq. 3-12)."""
    s = np.sin(lat_rad)
    return (1 - _E2) * (s / (1 - _E2 * s * s) - np.log((1 - _E * s) / (1 + _E * s)) / (2 * _E))


_QP = _authalic(np.array([np.pi / 2]))[0]
_RQ2 = _A * _A * _QP / 2  # squared radius of the authalic sphere


@dataclass(frozen=True)
class RingTable:
    """Every ring vertex of an array of (multi)polygons, with its ring's signed spherical excess.

    One pass over the coordinates serves the area, the orientation check and the coverage check.
    """

    coords: np.ndarray        # (n, 2) lon/lat of every ring vertex
    coord_ring: np.ndarray    # ring index of each vertex
    ring_part: np.ndarray     # polygon (part) index of each ring
    part_geom: np.ndarray     # input index of each part
    ring_is_shell: np.ndarray
    ring_excess: np.ndarray   # signed: positive for counter-clockwise rings
    n_geoms: int
    ring_off: np.ndarray      # the same as offsets (GeoArrow's layout): vertices of ring r from ring_off[r]
    part_off: np.ndarray      # rings of part p from part_off[p]
    geom_off: np.ndarray      # parts of geometry g from geom_off[g]

    def areas(self) -> np.ndarray:
        """Ellipsoidal area (m²) of each input geometry: shells minus holes."""
        ring_area = np.abs(self.ring_excess) * _RQ2
        signed = np.where(self.ring_is_shell, ring_area, -ring_area)
        part_area = np.bincount(self.ring_part, weights=signed, minlength=len(self.part_geom))
        return np.bincount(self.part_geom, weights=part_area, minlength=self.n_geoms)

    def misoriented_rings(self) -> np.ndarray:
        """Rings not in the OGC orientation (shells counter-clockwise, holes clockwise)."""
        return np.where(self.ring_is_shell, self.ring_excess < 0, self.ring_excess > 0)

    def oriented_ewkb(self, srid: int = STORAGE_EPSG) -> pa.Array:
        """Each geometry as an EWKB MultiPolygon with ``srid``, rings in the OGC orientation, as Arrow
        binary (written by the compiled kernel, straight from the table)."""
        from multiplan.convexclip import kernel

        data, offsets = kernel().multipolygon_ewkb(self.coords, self.ring_off, self.part_off, self.geom_off,
                                                   self.misoriented_rings(), srid)
        return pa.LargeBinaryArray.from_buffers(pa.large_binary(), self.n_geoms,
                                                [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    def bounds(self) -> np.ndarray:
        """(minx, miny, maxx, maxy) of each geometry; NaN for those without vertices."""
        starts = self.ring_off[self.part_off[self.geom_off]]  # first vertex of each geometry, and the end
        out = np.full((self.n_geoms, 4), np.nan)
        has = np.diff(starts) > 0
        if has.any():
            at = starts[:-1][has]
            for col, (reduce, axis) in enumerate(((np.minimum, 0), (np.minimum, 1), (np.maximum, 0), (np.maximum, 1))):
                out[has, col] = reduce.reduceat(self.coords[:, axis], at)
        return out

    def geoms_with(self, ring_mask: np.ndarray) -> np.ndarray:
        """Boolean per input geometry: has at least one ring in ``ring_mask``."""
        hits = np.bincount(self.part_geom[self.ring_part[ring_mask]], minlength=self.n_geoms)
        return hits > 0


def ring_table(geoms: np.ndarray) -> RingTable:
    """The :class:`RingTable` of lon/lat polygons and multipolygons (other geometries have no rings)."""
    geoms = np.asarray(geoms, dtype=object)
    parts, part_geom = shapely.get_parts(geoms, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3
    parts, part_geom = parts[polygonal], part_geom[polygonal]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    # the first ring of each polygon is its shell; the others are holes
    is_shell = np.r_[True, ring_part[1:] != ring_part[:-1]] if len(rings) else np.zeros(0, dtype=bool)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    ring_off = _offsets(coord_ring, len(rings))
    from multiplan.convexclip import kernel  # its module imports this one

    ring_excess = kernel().ring_excess(np.ascontiguousarray(coords), ring_off)
    return RingTable(coords, coord_ring, ring_part, part_geom, is_shell, ring_excess, len(geoms),
                     ring_off, _offsets(ring_part, len(parts)), _offsets(part_geom, len(geoms)))


def _offsets(owner: np.ndarray, n: int) -> np.ndarray:
    return np.r_[0, np.cumsum(np.bincount(owner, minlength=n))].astype(np.int64)


def _repeat_index(off: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(off) - 1), np.diff(off))


def flat_wkb(wkb: np.ndarray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An array of WKB (None for missing), or Arrow binary, as one byte buffer and each item's offsets
    into it."""
    packed = wkb if isinstance(wkb, pa.Array) else pa.array(wkb, type=pa.large_binary(), from_pandas=True)
    _, off, data = packed.buffers()
    width = np.int64 if pa.types.is_large_binary(packed.type) else np.int32
    off = np.frombuffer(off, width)[packed.offset:packed.offset + len(packed) + 1].astype(np.int64)
    return (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)), off


def wkb_ring_table(wkb: np.ndarray | pa.Array, move: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> tuple[RingTable, np.ndarray]:
    """The :class:`RingTable` of polygons and multipolygons given as WKB, read by the compiled kernel
    without making geometries; and a mask of the items it could not read (not polygonal, or malformed),
    which have no rings. ``move`` takes the coordinates as read to lon/lat, before they are measured."""
    from multiplan.convexclip import kernel  # the kernel's module needs this one

    k = kernel()
    coords, ring_off, part_off, geom_off, status = k.wkb_polygons(*flat_wkb(wkb))
    if move is not None:
        coords = np.ascontiguousarray(move(coords))
    ring_part = _repeat_index(part_off)
    is_shell = np.zeros(len(ring_off) - 1, dtype=bool)
    is_shell[part_off[:-1][np.diff(part_off) > 0]] = True
    return RingTable(coords, _repeat_index(ring_off), ring_part, _repeat_index(geom_off), is_shell,
                     k.ring_excess(coords, ring_off), len(geom_off) - 1, ring_off, part_off, geom_off), status != 0


# Vertices per chunk of an area computation: each chunk's ring table takes about 150 bytes a vertex,
# and two chunks are in flight at once.
AREA_CHUNK_VERTICES = 100_000


def ellipsoidal_area(geoms: np.ndarray) -> np.ndarray:
    """Ellipsoidal areas (m²) on the CGCS2000 ellipsoid of lon/lat polygons, vectorised.

    Latitudes go to the authalic sphere, which preserves area exactly; each ring's area there is the
    exact spherical excess of its edges. For planning-scale polygons this agrees with pyproj's
    geodesic area to better than 1e-6 relative (see tests). The polygonal parts of a collection
    count; points and lines get 0.
    """
    geoms = np.array(geoms, dtype=object)
    for i in np.flatnonzero(shapely.get_type_id(geoms) == 7):  # overlay results mix dimensions
        parts = shapely.get_parts(geoms[i])
        geoms[i] = shapely.multipolygons(shapely.get_parts(parts[np.isin(shapely.get_type_id(parts), (3, 6))]))
    # in chunks of about the same vertex count: one ring table of a province's millions of faces
    # would take gigabytes at once
    vertices = np.cumsum(shapely.get_num_coordinates(geoms))
    cuts = np.searchsorted(vertices, np.arange(AREA_CHUNK_VERTICES, vertices[-1] if len(vertices) else 0,
                                               AREA_CHUNK_VERTICES), side="right")
    chunks = [chunk for chunk in np.split(geoms, np.unique(cuts)) if len(chunk)] or [geoms]
    if len(chunks) == 1:
        return ring_table(chunks[0]).areas()
    with ThreadPoolExecutor(threads()) as pool:  # numpy and shapely release the GIL on arrays this long
        return np.concatenate(list(pool.map(lambda chunk: ring_table(chunk).areas(), chunks)))


def geodesic_length(geoms: np.ndarray) -> np.ndarray:
    """Geodesic lengths (m) on the CGCS2000 ellipsoid of lon/lat lines (and polygon boundaries; points and
    None count 0), vectorised: each segment's geodesic distance, summed per geometry, as pyproj's
    ``Geod.geometry_length`` sums them one geometry at a time."""
    geoms = np.asarray(geoms, dtype=object)
    # two levels of parts: a collection may hold multi-geometries
    parts, owner = shapely.get_parts(geoms, return_index=True)
    parts, inner = shapely.get_parts(parts, return_index=True)
    owner = owner[inner]
    kind = shapely.get_type_id(parts)
    linear = np.isin(kind, (1, 2))
    rings, ring_of = shapely.get_rings(parts[kind == 3], return_index=True)
    pieces = np.concatenate([parts[linear], rings])
    piece_owner = np.concatenate([owner[linear], owner[kind == 3][ring_of]]).astype(np.int64)
    coords, piece = shapely.get_coordinates(pieces, return_index=True)
    same = piece[1:] == piece[:-1]
    if not same.any():
        return np.zeros(len(geoms))
    _, _, distance = STORAGE_CRS.get_geod().inv(coords[:-1, 0][same], coords[:-1, 1][same],
                                                  coords[1:, 0][same], coords[1:, 1][same])
    return np.bincount(piece_owner[piece[:-1][same]], weights=distance, minlength=len(geoms))
