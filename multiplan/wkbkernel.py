"""Polygon WKB in, ring table, segment keys and EWKB out, compiled: the loader's geometry pass.

A load used to take each chunk's polygons apart with shapely (parts, rings, coordinates), measure them
with numpy, orient and re-assemble them as multipolygons, and write them out again as EWKB: six passes
that built millions of small objects and cost more than reading the file. Here the WKB as read (or as
repaired) is walked once into flat arrays (the GeoArrow layout: coordinates, ring, polygon and geometry
offsets), and the oriented multipolygon EWKB the database takes is written straight from them.

Compiled ahead of time with the clipping and face kernels (:mod:`multiplan.clipkernel`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from multiplan.crs import _E2, _QP

# Outcome of reading one geometry.
WKB_OK, WKB_UNSUPPORTED = 0, 1
_Z, _M, _SRID = 0x80000000, 0x40000000, 0x20000000
# Segment-key hashing constants (as multiplan.coverage's).
_K0, _K1, _K2, _K3 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9),
                      np.uint64(0x27D4EB2F165667C5))
_NOT_1 = np.uint64(0xFFFFFFFFFFFFFFFE)


@njit(cache=True, nogil=True)
def _u32(buf, p, little):
    b0, b1, b2, b3 = np.int64(buf[p]), np.int64(buf[p + 1]), np.int64(buf[p + 2]), np.int64(buf[p + 3])
    if little:
        return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)
    return b3 | (b2 << 8) | (b1 << 16) | (b0 << 24)


@njit(cache=True, nogil=True)
def _header(buf, p, end):
    """(position after the header, little endian, base type, dimensions), or p = -1 when it is not readable."""
    if p + 5 > end or buf[p] > 1:
        return -1, False, 0, 0
    little = buf[p] == 1
    t = _u32(buf, p + 1, little)
    p += 5
    dims = 2 + (1 if t & _Z else 0) + (1 if t & _M else 0)
    if t & _SRID:
        p += 4
    t &= 0x0FFFFFFF
    iso = t // 1000
    dims += 1 if iso == 1 or iso == 2 else (2 if iso == 3 else 0)
    return (p if p <= end and iso <= 3 else -1), little, t % 1000, dims


@njit(cache=True, nogil=True)
def _polygon(buf, p, end, little, dims, xyb, nc, ring_off, nr, write):
    """Read one polygon's rings from ``p``; returns (new p, coordinates, rings), p = -1 when malformed."""
    if p + 4 > end:
        return -1, nc, nr
    n_rings = _u32(buf, p, little)
    p += 4
    for _ in range(n_rings):
        if p + 4 > end:
            return -1, nc, nr
        n = _u32(buf, p, little)
        p += 4
        if p + n * 8 * dims > end:
            return -1, nc, nr
        if write:
            dst = nc * 16
            if little and dims == 2:
                xyb[dst:dst + n * 16] = buf[p:p + n * 16]
            else:
                for v in range(n):
                    src = p + v * 8 * dims
                    for c in range(2):
                        for b in range(8):
                            xyb[dst + v * 16 + c * 8 + b] = buf[src + c * 8 + (b if little else 7 - b)]
            ring_off[nr + 1] = nc + n
        p += n * 8 * dims
        nc += n
        nr += 1
    return p, nc, nr


@njit(cache=True, nogil=True)
def _geometry(buf, p, end, xyb, nc, ring_off, nr, poly_off, npoly, write):
    """Read one polygon or multipolygon; returns (readable, coordinates, rings, polygons) so far."""
    p, little, kind, dims = _header(buf, p, end)
    if p < 0 or (kind != 3 and kind != 6):
        return False, nc, nr, npoly
    n_parts = 1
    if kind == 6:
        if p + 4 > end:
            return False, nc, nr, npoly
        n_parts = _u32(buf, p, little)
        p += 4
    for _ in range(n_parts):
        if kind == 6:
            p, little, part_kind, dims = _header(buf, p, end)
            if p < 0 or part_kind != 3:
                return False, nc, nr, npoly
        p, nc, nr = _polygon(buf, p, end, little, dims, xyb, nc, ring_off, nr, write)
        if p < 0:
            return False, nc, nr, npoly
        npoly += 1
        if write:
            poly_off[npoly] = nr
    return True, nc, nr, npoly


@njit(cache=True, nogil=True)
def wkb_polygons(buf, off):
    """Polygons and multipolygons given as WKB (feature ``g`` is ``buf[off[g]:off[g + 1]]``; 2-D, Z, M,
    ISO or EWKB, either byte order) as flat arrays: lon/lat of every ring vertex, ring offsets into them,
    polygon offsets into the rings, geometry offsets into the polygons, and each geometry's status
    (WKB_UNSUPPORTED: not polygonal or malformed; it then has no polygons)."""
    n = len(off) - 1
    status = np.zeros(n, np.int8)
    none_b = np.zeros(0, np.uint8)
    none_i = np.zeros(0, np.int64)
    nc = nr = npoly = 0
    for g in range(n):  # first pass: sizes, and which geometries are readable
        ok, c, r, q = _geometry(buf, off[g], off[g + 1], none_b, 0, none_i, 0, none_i, 0, False)
        if ok:
            nc, nr, npoly = nc + c, nr + r, npoly + q
        else:
            status[g] = WKB_UNSUPPORTED
    xy = np.empty((nc, 2))
    ring_off = np.zeros(nr + 1, np.int64)
    poly_off = np.zeros(npoly + 1, np.int64)
    geom_off = np.zeros(n + 1, np.int64)
    xyb = xy.reshape(-1).view(np.uint8)
    nc = nr = npoly = 0
    for g in range(n):
        if status[g] == WKB_OK:
            _, nc, nr, npoly = _geometry(buf, off[g], off[g + 1], xyb, nc, ring_off, nr, poly_off, npoly, True)
        geom_off[g + 1] = npoly
    return xy, ring_off, poly_off, geom_off, status


@njit(cache=True, nogil=True)
def excess_of_ring(xy, start, end):
    """Signed spherical excess of the closed lon/lat ring ``xy[start:end]`` on the authalic sphere (positive
    counter-clockwise): the exact area on the ellipsoid over the authalic sphere's radius squared.

    Per vertex tan(β/2) of the authalic latitude β; per edge the excess of the trapezoid to the equator,
    2·atan(tan(Δλ/2)·(t1 + t2) / (1 + t1·t2)). For planning-sized edges the arguments are tiny, and
    the series (to beyond double precision) replace tan, atan and the log of q(φ).
    """
    excess = 0.0
    t_prev = lon_prev = 0.0
    for v in range(start, end):
        lon = np.radians(xy[v, 0])
        s = np.sin(np.radians(xy[v, 1]))
        u2 = _E2 * s * s
        # atanh(e·s)/(e·s) = 1 + u²/3 + u⁴/5 + ..., u² = e²s² <= 0.0067: 9 terms reach 1e-19
        series = 1 + u2 * (1 / 3 + u2 * (1 / 5 + u2 * (1 / 7 + u2 * (1 / 9 + u2 * (1 / 11 + u2 * (
            1 / 13 + u2 * (1 / 15 + u2 * (1 / 17 + u2 / 19))))))))
        q = (1 - _E2) * s * (1 / (1 - u2) + series)
        sin_beta = min(1.0, max(-1.0, q / _QP))
        t = sin_beta / (1 + np.sqrt(1 - sin_beta * sin_beta))  # tan(β/2)
        if v > start:
            x = (lon - lon_prev) / 2
            if abs(x) < 1e-3:
                x2 = x * x
                tan_x = x * (1 + x2 * (1 / 3 + x2 * (2 / 15 + x2 * 17 / 315)))
            else:
                tan_x = np.tan(x)
            z = tan_x * (t_prev + t) / (1 + t_prev * t)
            if abs(z) < 1e-3:
                z2 = z * z
                excess += 2 * z * (1 - z2 * (1 / 3 - z2 * (1 / 5 - z2 * (1 / 7 - z2 / 9))))
            else:
                excess += 2 * np.arctan(z)
        t_prev, lon_prev = t, lon
    return -excess  # the sum runs against the pole-ward trapezoids


@njit(cache=True, nogil=True)
def ring_excess(xy, ring_off):
    """:func:`excess_of_ring` of every ring, as :func:`multiplan.crs.ring_table` computes it."""
    out = np.zeros(len(ring_off) - 1)
    for r in range(len(ring_off) - 1):
        out[r] = excess_of_ring(xy, ring_off[r], ring_off[r + 1])
    return out


@njit(cache=True, nogil=True)
def _put_u32(out, p, value):
    for b in range(4):
        out[p + b] = (value >> (8 * b)) & 0xFF
    return p + 4


@njit(cache=True, nogil=True)
def multipolygon_ewkb(xy, ring_off, poly_off, geom_off, reverse, srid):
    """Each geometry as a little-endian EWKB MultiPolygon with ``srid``, the rings flagged in ``reverse``
    walked backwards; returns the bytes and each geometry's offsets into them."""
    n = len(geom_off) - 1
    n_polys = len(poly_off) - 1
    n_rings = len(ring_off) - 1
    size = n * 13 + n_polys * 9 + n_rings * 4 + (ring_off[-1] - ring_off[0]) * 16
    out = np.empty(size, np.uint8)
    offsets = np.zeros(n + 1, np.int64)
    xyb = xy.reshape(-1).view(np.uint8)
    p = 0
    for g in range(n):
        out[p] = 1
        p = _put_u32(out, p + 1, 6 | _SRID)
        p = _put_u32(out, p, srid)
        p = _put_u32(out, p, geom_off[g + 1] - geom_off[g])
        for q in range(geom_off[g], geom_off[g + 1]):
            out[p] = 1
            p = _put_u32(out, p + 1, 3)
            p = _put_u32(out, p, poly_off[q + 1] - poly_off[q])
            for r in range(poly_off[q], poly_off[q + 1]):
                a, b = ring_off[r], ring_off[r + 1]
                p = _put_u32(out, p, b - a)
                if not reverse[r]:
                    out[p:p + (b - a) * 16] = xyb[a * 16:b * 16]
                    p += (b - a) * 16
                else:
                    for v in range(b - 1, a - 1, -1):
                        out[p:p + 16] = xyb[v * 16:v * 16 + 16]
                        p += 16
        offsets[g + 1] = p
    return out, offsets


@njit(cache=True, nogil=True)
def segment_keys(xy, ring_off, reverse, snap):
    """The coverage check's key of every boundary segment (see :func:`multiplan.coverage.segment_keys`):
    end points snapped to ``snap``, a hash of the undirected segment with the direction in the low bit,
    rings flagged in ``reverse`` taken the other way; segments that snap to a point are left out.
    Returns the keys and each key's first vertex (as stored)."""
    keys = np.empty(max(0, ring_off[-1] - ring_off[0]), np.uint64)
    vertex = np.empty(len(keys), np.int64)
    k = 0
    for r in range(len(ring_off) - 1):
        for v in range(ring_off[r], ring_off[r + 1] - 1):
            ax, ay = np.int64(np.rint(xy[v, 0] / snap)), np.int64(np.rint(xy[v, 1] / snap))
            bx, by = np.int64(np.rint(xy[v + 1, 0] / snap)), np.int64(np.rint(xy[v + 1, 1] / snap))
            if ax == bx and ay == by:
                continue
            flip = ax > bx or (ax == bx and ay > by)
            if flip:
                ax, ay, bx, by = bx, by, ax, ay
            h = np.uint64(ax) * _K0 + np.uint64(ay) * _K1 + np.uint64(bx) * _K2 + np.uint64(by) * _K3
            key = (h & _NOT_1) | np.uint64(1 if flip else 0)
            if reverse[r]:
                key ^= np.uint64(1)
            keys[k] = key
            vertex[k] = v
            k += 1
    return keys[:k], vertex[:k]


# Rings with more segments than this are left to GEOS (the check below compares every pair).
MAX_SIMPLE_SEGMENTS = 64
# Orientation signs are trusted beyond this multiple of the terms' magnitude (Shewchuk's bound is 3.3e-16).
ORIENT_EPS = 1e-15


@njit(cache=True, nogil=True)
def _side(ax, ay, bx, by, cx, cy):
    """Sign of the turn a -> b -> c (1 left, -1 right), 0 when rounding could decide it."""
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    if abs(det) <= ORIENT_EPS * (abs(left) + abs(right)):
        return 0
    return 1 if det > 0 else -1


@njit(cache=True, nogil=True)
def _certainly_simple(xy, start, end, px, py):
    """True when the closed ring xy[start:end] is certainly simple: closed, at least three distinct
    corners, no two segments meeting except neighbours at their shared vertex. False when it is not,
    or when a test comes too close to call: GEOS decides then."""
    if end - start < 4 or end - start > MAX_SIMPLE_SEGMENTS + 1:
        return False
    if xy[start, 0] != xy[end - 1, 0] or xy[start, 1] != xy[end - 1, 1]:
        return False
    n = 0
    for v in range(start, end):  # repeated points are allowed; they make no segment
        if n == 0 or xy[v, 0] != px[n - 1] or xy[v, 1] != py[n - 1]:
            px[n], py[n] = xy[v, 0], xy[v, 1]
            n += 1
    m = n - 1  # segments; vertex m repeats vertex 0
    if m < 3:
        return False
    for i in range(m):  # neighbours: only their shared vertex in common, so no turning back
        j, k = (i + 1) % m, (i + 2) % m
        ux, uy = px[i + 1] - px[i], py[i + 1] - py[i]
        wx, wy = px[k] - px[j], py[k] - py[j]
        if _side(px[i], py[i], px[j], py[j], px[k], py[k]) == 0:
            dot = ux * wx + uy * wy
            if dot <= ORIENT_EPS * (abs(ux * wx) + abs(uy * wy)):
                return False  # a spike, or too close to call
    for i in range(m - 2):
        ax, ay, bx, by = px[i], py[i], px[i + 1], py[i + 1]
        for j in range(i + 2, m):
            if i == 0 and j == m - 1:
                continue  # neighbours across the closing vertex
            cx, cy, dx, dy = px[j], py[j], px[j + 1], py[j + 1]
            if max(ax, bx) < min(cx, dx) or max(cx, dx) < min(ax, bx) or \
                    max(ay, by) < min(cy, dy) or max(cy, dy) < min(ay, by):
                continue
            s1, s2 = _side(ax, ay, bx, by, cx, cy), _side(ax, ay, bx, by, dx, dy)
            if s1 != 0 and s1 == s2:
                continue
            s3, s4 = _side(cx, cy, dx, dy, ax, ay), _side(cx, cy, dx, dy, bx, by)
            if s3 != 0 and s3 == s4:
                continue
            return False  # they meet, or too close to call
    return True


@njit(cache=True, nogil=True)
def certainly_valid(xy, ring_off, part_off, geom_off):
    """For each geometry: True when it is a polygon of one ring (or a multipolygon of one such) that is
    certainly valid in the OGC sense; False leaves it to GEOS (holes, several parts, long rings, and
    anything near a degenerate case)."""
    n = len(geom_off) - 1
    out = np.zeros(n, np.bool_)
    px = np.empty(MAX_SIMPLE_SEGMENTS + 1)
    py = np.empty(MAX_SIMPLE_SEGMENTS + 1)
    for g in range(n):
        if geom_off[g + 1] - geom_off[g] != 1:
            continue
        p = geom_off[g]
        if part_off[p + 1] - part_off[p] != 1:
            continue
        r = part_off[p]
        out[g] = _certainly_simple(xy, ring_off[r], ring_off[r + 1], px, py)
    return out
