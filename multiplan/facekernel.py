"""The compiled part of the one map's faces (:func:`multiplan.onemap.polygonise`), in numba.

First :func:`insert_near_vertices` (on the coordinates before rounding), then two steps on integer
coordinates (multiples of the noding grid, relative to the tile's corner, below 2**30 so that every
orientation test is exact in 64-bit integers):

- :func:`snap_round`: snap rounding. Hot pixels are every vertex and every proper crossing of two segments,
  rounded to the grid; each segment is split at every hot pixel it passes through. Nothing crosses
  afterwards: the edges meet only at their ends.
- :func:`planar_faces`: the faces of the planar graph of those edges. Edges are sorted by angle around each
  node (exactly), each face is traced by turning as far left as possible, dangling and cut edges are
  dropped (they bound no area), and each connected component's outer ring becomes a hole of the smallest
  face of another component around it.

GEOS does the same with ``union_all(grid_size=...)`` and ``polygonize``, several times slower and holding
the GIL in its polygonizer. GEOS rounds crossings of the unrounded segments where these steps round the
vertices first: where two boundaries nearly coincide (within a grid step) without sharing vertices, these
steps may leave a sliver one grid step (0.1 mm) wide that GEOS merges away, the same area either way.

These functions are compiled ahead of time with :mod:`multiplan.clipkernel`'s entry points.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def grid_cells(x0, y0, x1, y1, size, ncx, ncy):
    """Items with integer boxes in a grid of square cells (CSR: offsets per cell, items), each item in
    every cell its box overlaps."""
    count = np.zeros(ncx * ncy + 1, np.int64)
    for i in range(len(x0)):
        for cx in range(x0[i] // size, x1[i] // size + 1):
            for cy in range(y0[i] // size, y1[i] // size + 1):
                count[cx * ncy + cy + 1] += 1
    for c in range(ncx * ncy):
        count[c + 1] += count[c]
    items = np.empty(count[-1], np.int64)
    fill = count[:-1].copy()
    for i in range(len(x0)):
        for cx in range(x0[i] // size, x1[i] // size + 1):
            for cy in range(y0[i] // size, y1[i] // size + 1):
                items[fill[cx * ncy + cy]] = i
                fill[cx * ncy + cy] += 1
    return count, items


@njit(cache=True, nogil=True)
def cell_size(x0, y0, x1, y1, width, height, per_cell):
    """The side of square cells over boxes (integer, from 0 to ``width``/``height``) for about ``per_cell``
    boxes a cell, made larger while long boxes would be listed in too many cells (a few long diagonal
    edges, as zoning polygons have, span most of a fine grid)."""
    n = len(x0)
    size = max(1, int(np.sqrt(float(width) * float(height) * per_cell / max(1, n))))
    while True:
        cells = (width // size + 1) * (height // size + 1)
        listed = 0
        for i in range(n):
            listed += (x1[i] // size - x0[i] // size + 1) * (y1[i] // size - y0[i] // size + 1)
        if (listed <= 8 * n + 64 and cells <= 4 * n + 64) or size >= max(width, height):
            return size
        size *= 2


@njit(cache=True, nogil=True)
def orientation(ax, ay, bx, by, cx, cy):
    """+1 if c lies left of a->b, -1 right, 0 on the line (exact for coordinates below 2**30)."""
    v = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    return (v > 0) - (v < 0)


@njit(cache=True, nogil=True)
def grow(buf, need):
    """``buf``, or a copy at least twice as long, holding at least ``need`` items (for the clipping kernel
    too)."""
    if need <= len(buf):
        return buf
    out = np.empty(max(need, 2 * len(buf)), buf.dtype)
    out[:len(buf)] = buf
    return out


@njit(cache=True, nogil=True)
def insert_near_vertices(fx, fy, ring_off, tolerance):
    """The rings (``fx``, ``fy``: coordinates in grid steps, before rounding) with every vertex that lies
    within ``tolerance`` of a segment, strictly between its ends, inserted into that segment. A vertex
    computed on a boundary (where an overlay cut it) lies a rounding error off it; rounded apart, the two
    would bound a sliver one grid step wide. GEOS's snap-rounding noder does the same."""
    n_seg = 0
    for r in range(len(ring_off) - 1):
        n_seg += max(0, ring_off[r + 1] - ring_off[r] - 1)
    if n_seg == 0:
        return fx, fy, ring_off
    start = np.empty(n_seg, np.int64)
    bx0, by0 = np.empty(n_seg, np.int64), np.empty(n_seg, np.int64)
    bx1, by1 = np.empty(n_seg, np.int64), np.empty(n_seg, np.int64)
    k = 0
    for r in range(len(ring_off) - 1):
        for v in range(ring_off[r], ring_off[r + 1] - 1):
            start[k] = v
            bx0[k] = np.int64(np.floor(min(fx[v], fx[v + 1]) - tolerance))
            bx1[k] = np.int64(np.floor(max(fx[v], fx[v + 1]) + tolerance))
            by0[k] = np.int64(np.floor(min(fy[v], fy[v + 1]) - tolerance))
            by1[k] = np.int64(np.floor(max(fy[v], fy[v + 1]) + tolerance))
            k += 1
    low_x, low_y = bx0.min(), by0.min()
    bx0, bx1, by0, by1 = bx0 - low_x, bx1 - low_x, by0 - low_y, by1 - low_y
    width, height = bx1.max() + 1, by1.max() + 1
    size = cell_size(bx0, by0, bx1, by1, width, height, 2)
    ncx, ncy = width // size + 1, height // size + 1
    cell_off, cell_seg = grid_cells(bx0, by0, bx1, by1, size, ncx, ncy)
    into, vertex, along = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.float64)
    m = 0
    for r in range(len(ring_off) - 1):
        for v in range(ring_off[r], ring_off[r + 1] - 1):  # the closing vertex repeats the first
            px, py = fx[v], fy[v]
            c = ((np.int64(np.floor(px)) - low_x) // size) * ncy + (np.int64(np.floor(py)) - low_y) // size
            for q in range(cell_off[c], cell_off[c + 1]):
                a = start[cell_seg[q]]
                ax, ay, dx, dy = fx[a], fy[a], fx[a + 1] - fx[a], fy[a + 1] - fy[a]
                length2 = dx * dx + dy * dy
                if length2 == 0.0 or (px == ax and py == ay) or (px == fx[a + 1] and py == fy[a + 1]):
                    continue
                t = ((px - ax) * dx + (py - ay) * dy) / length2
                if t <= 0.0 or t >= 1.0:
                    continue
                ex, ey = ax + t * dx - px, ay + t * dy - py
                if ex * ex + ey * ey > tolerance * tolerance:
                    continue
                into, vertex, along = grow(into, m + 1), grow(vertex, m + 1), grow(along, m + 1)
                into[m], vertex[m], along[m] = a, v, t
                m += 1
    if m == 0:
        return fx, fy, ring_off
    order = np.argsort(into[:m] * 2.0 + along[:m])  # by segment, then along it (t < 1)
    out_x, out_y = np.empty(len(fx) + m), np.empty(len(fx) + m)
    out_off = np.empty(len(ring_off), np.int64)
    j = q = 0
    for r in range(len(ring_off) - 1):
        out_off[r] = j
        for v in range(ring_off[r], ring_off[r + 1]):
            out_x[j], out_y[j] = fx[v], fy[v]
            j += 1
            while q < m and into[order[q]] == v:
                out_x[j], out_y[j] = fx[vertex[order[q]]], fy[vertex[order[q]]]
                j += 1
                q += 1
    out_off[len(ring_off) - 1] = j
    return out_x[:j], out_y[:j], out_off


@njit(cache=True, nogil=True)
def snap_round(x, y, ring_off):
    """The snap-rounded edges of closed rings (``x``, ``y``: integer coordinates; ring r is
    ``ring_off[r]:ring_off[r+1]``): start and end coordinates of each piece, duplicates included."""
    n = 0
    for r in range(len(ring_off) - 1):
        n += max(0, ring_off[r + 1] - ring_off[r] - 1)
    sx0, sy0 = np.empty(n, np.int64), np.empty(n, np.int64)
    sx1, sy1 = np.empty(n, np.int64), np.empty(n, np.int64)
    n = 0
    for r in range(len(ring_off) - 1):
        for v in range(ring_off[r], ring_off[r + 1] - 1):
            if x[v] != x[v + 1] or y[v] != y[v + 1]:
                sx0[n], sy0[n], sx1[n], sy1[n] = x[v], y[v], x[v + 1], y[v + 1]
                n += 1
    sx0, sy0, sx1, sy1 = sx0[:n], sy0[:n], sx1[:n], sy1[:n]
    bx0, bx1 = np.minimum(sx0, sx1), np.maximum(sx0, sx1)
    by0, by1 = np.minimum(sy0, sy1), np.maximum(sy0, sy1)
    width = bx1.max() + 1 if n else 1
    height = by1.max() + 1 if n else 1
    size = cell_size(bx0, by0, bx1, by1, width, height, 2)
    ncx, ncy = width // size + 1, height // size + 1
    cell_off, cell_seg = grid_cells(bx0, by0, bx1, by1, size, ncx, ncy)

    hx, hy = np.empty(n + 64, np.int64), np.empty(n + 64, np.int64)
    hx[:n], hy[:n] = sx0, sy0  # every vertex is a hot pixel
    nh = n
    for c in range(ncx * ncy):
        lo, hi = cell_off[c], cell_off[c + 1]
        for a in range(lo, hi):
            i = cell_seg[a]
            for b in range(a + 1, hi):
                j = cell_seg[b]
                cx0, cy0 = max(bx0[i], bx0[j]), max(by0[i], by0[j])
                if cx0 > min(bx1[i], bx1[j]) or cy0 > min(by1[i], by1[j]):
                    continue
                if (cx0 // size) * ncy + cy0 // size != c:
                    continue  # each pair once: in the cell of its boxes' common corner
                if orientation(sx0[i], sy0[i], sx1[i], sy1[i], sx0[j], sy0[j]) * \
                        orientation(sx0[i], sy0[i], sx1[i], sy1[i], sx1[j], sy1[j]) >= 0:
                    continue
                if orientation(sx0[j], sy0[j], sx1[j], sy1[j], sx0[i], sy0[i]) * \
                        orientation(sx0[j], sy0[j], sx1[j], sy1[j], sx1[i], sy1[i]) >= 0:
                    continue
                # a proper crossing (touching ends are vertices, hot already); its point is rounded
                dxi, dyi = float(sx1[i] - sx0[i]), float(sy1[i] - sy0[i])
                dxj, dyj = float(sx1[j] - sx0[j]), float(sy1[j] - sy0[j])
                t = (float(sx0[j] - sx0[i]) * dyj - float(sy0[j] - sy0[i]) * dxj) / (dxi * dyj - dyi * dxj)
                hx, hy = grow(hx, nh + 1), grow(hy, nh + 1)
                hx[nh] = np.int64(np.floor(sx0[i] + t * dxi + 0.5))
                hy[nh] = np.int64(np.floor(sy0[i] + t * dyi + 0.5))
                nh += 1
    hx, hy = hx[:nh], hy[:nh]
    hot_off, hot = grid_cells(hx, hy, hx, hy, size, ncx, ncy)

    x0, y0, x1, y1, rerouted = split_at_pixels(sx0, sy0, sx1, sy1, np.ones(n, np.bool_), hx, hy, hot_off, hot,
                                               size, ncy, False)
    # a piece between two hot pixels may run exactly through a third: split there too, or two edges would
    # overlap (a segment left whole met no hot pixel on the way, so only the pieces need looking at)
    x0, y0, x1, y1, _ = split_at_pixels(x0, y0, x1, y1, rerouted, hx, hy, hot_off, hot, size, ncy, True)
    return x0, y0, x1, y1


@njit(cache=True, nogil=True)
def split_at_pixels(sx0, sy0, sx1, sy1, examine, hx, hy, hot_off, hot, size, ncy, centre_only):
    """Each segment marked in ``examine`` split at every hot pixel it passes through (``centre_only``: at
    every one whose centre it passes through), in order along it; the others as they are. Also marks the
    pieces of segments that were split."""
    n = len(sx0)
    ex0, ey0 = np.empty(n + n // 4 + 16, np.int64), np.empty(n + n // 4 + 16, np.int64)
    ex1, ey1 = np.empty(n + n // 4 + 16, np.int64), np.empty(n + n // 4 + 16, np.int64)
    split = np.zeros(n + n // 4 + 16, np.bool_)
    ne = 0
    along, through = np.empty(16, np.float64), np.empty(16, np.int64)
    for i in range(n):
        ax, ay, bx, by = sx0[i], sy0[i], sx1[i], sy1[i]
        if not examine[i]:
            ex0, ey0, ex1, ey1 = grow(ex0, ne + 1), grow(ey0, ne + 1), grow(ex1, ne + 1), grow(ey1, ne + 1)
            split = grow(split, ne + 1)
            ex0[ne], ey0[ne], ex1[ne], ey1[ne], split[ne] = ax, ay, bx, by, False
            ne += 1
            continue
        dx, dy = bx - ax, by - ay
        x_lo, x_hi, y_lo, y_hi = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
        m = 0
        for cx in range(x_lo // size, x_hi // size + 1):
            for cy in range(y_lo // size, y_hi // size + 1):
                c = cx * ncy + cy
                for q in range(hot_off[c], hot_off[c + 1]):
                    h = hot[q]
                    px, py = hx[h], hy[h]
                    if px < x_lo or px > x_hi or py < y_lo or py > y_hi:
                        continue
                    if (px == ax and py == ay) or (px == bx and py == by):
                        continue
                    twice = 2 * (dx * (py - ay) - dy * (px - ax))
                    if centre_only:
                        if twice != 0:
                            continue
                    else:
                        # does the segment meet the pixel (the square of side 1 around it)? Not when all four
                        # corners lie strictly on one side of it (twice the cross products: exact integers)
                        left = right = 0
                        for ex in (-1, 1):
                            for ey in (-1, 1):
                                v = twice + dx * ey - dy * ex
                                if v > 0:
                                    left += 1
                                elif v < 0:
                                    right += 1
                        if left == 4 or right == 4:
                            continue
                    along, through = grow(along, m + 1), grow(through, m + 1)
                    along[m] = float(px - ax) * dx + float(py - ay) * dy
                    through[m] = h
                    m += 1
        for a in range(1, m):  # insertion sort along the segment: a segment meets few hot pixels
            key, value = along[a], through[a]
            b = a - 1
            while b >= 0 and along[b] > key:
                along[b + 1], through[b + 1] = along[b], through[b]
                b -= 1
            along[b + 1], through[b + 1] = key, value
        ex0, ey0 = grow(ex0, ne + m + 1), grow(ey0, ne + m + 1)
        ex1, ey1 = grow(ex1, ne + m + 1), grow(ey1, ne + m + 1)
        split = grow(split, ne + m + 1)
        px, py = ax, ay
        for q in range(m + 1):
            if q < m:
                qx, qy = hx[through[q]], hy[through[q]]
            else:
                qx, qy = bx, by
            if qx != px or qy != py:
                ex0[ne], ey0[ne], ex1[ne], ey1[ne], split[ne] = px, py, qx, qy, m > 0
                ne += 1
                px, py = qx, qy
    return ex0[:ne], ey0[:ne], ex1[:ne], ey1[:ne], split[:ne]


@njit(cache=True, nogil=True)
def ccw_before(dx1, dy1, dx2, dy2):
    """Direction 1 comes before direction 2, counter-clockwise from the positive x axis (exact)."""
    upper1 = dy1 > 0 or (dy1 == 0 and dx1 > 0)
    upper2 = dy2 > 0 or (dy2 == 0 and dx2 > 0)
    if upper1 != upper2:
        return upper1
    return dx1 * dy2 - dy1 * dx2 > 0


@njit(cache=True, nogil=True)
def root(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def planar_faces(nx, ny, eu, ev):
    """The bounded faces of the planar graph with nodes (``nx``, ``ny``: integers) and distinct edges
    ``eu[e]``-``ev[e]`` that meet only at nodes. Returns each ring's nodes (closed), ring offsets, each face's
    rings (shell first, then holes) as offsets, and which faces have a ring through one node twice."""
    n_nodes, n_edges = len(nx), len(eu)
    alive = np.ones(n_edges, np.bool_)
    while True:
        # adjacency: half-edge 2e runs eu->ev, 2e+1 back; each node's outgoing half-edges sorted by angle
        off = np.zeros(n_nodes + 1, np.int64)
        for e in range(n_edges):
            if alive[e]:
                off[eu[e] + 1] += 1
                off[ev[e] + 1] += 1
        for v in range(n_nodes):
            off[v + 1] += off[v]
        out = np.empty(off[-1], np.int64)
        fill = off[:-1].copy()
        for e in range(n_edges):
            if alive[e]:
                out[fill[eu[e]]] = 2 * e
                fill[eu[e]] += 1
                out[fill[ev[e]]] = 2 * e + 1
                fill[ev[e]] += 1
        # dangling edges bound nothing: drop them, and what dangles once they are gone
        stack = np.empty(n_nodes, np.int64)
        deg = off[1:] - off[:-1]
        ns = 0
        for v in range(n_nodes):
            if deg[v] == 1:
                stack[ns] = v
                ns += 1
        pruned = ns > 0
        while ns:
            ns -= 1
            v = stack[ns]
            for q in range(off[v], off[v + 1]):
                e = out[q] >> 1
                if alive[e]:
                    alive[e] = False
                    w = ev[e] if eu[e] == v else eu[e]
                    deg[v] -= 1
                    deg[w] -= 1
                    if deg[w] == 1:
                        stack[ns] = w
                        ns += 1
                    break
        if pruned:
            continue
        pos = np.empty(2 * n_edges, np.int64)
        for v in range(n_nodes):
            lo, hi = off[v], off[v + 1]
            for a in range(lo + 1, hi):  # insertion sort: a node has few edges
                h = out[a]
                w = ev[h >> 1] if h & 1 == 0 else eu[h >> 1]
                dx, dy = nx[w] - nx[v], ny[w] - ny[v]
                b = a - 1
                while b >= lo:
                    g = out[b]
                    z = ev[g >> 1] if g & 1 == 0 else eu[g >> 1]
                    if not ccw_before(dx, dy, nx[z] - nx[v], ny[z] - ny[v]):
                        break
                    out[b + 1] = g
                    b -= 1
                out[b + 1] = h
            for a in range(lo, hi):
                pos[out[a]] = a
        # the face left of u->v goes on along the edge next clockwise from v->u at v
        nxt = np.full(2 * n_edges, -1, np.int64)
        for e in range(n_edges):
            if alive[e]:
                for h in (2 * e, 2 * e + 1):
                    dest = ev[e] if h & 1 == 0 else eu[e]
                    p = pos[h ^ 1]
                    nxt[h] = out[p - 1] if p > off[dest] else out[off[dest + 1] - 1]
        cyc = np.full(2 * n_edges, -1, np.int64)
        n_cyc = 0
        for h0 in range(2 * n_edges):
            if nxt[h0] >= 0 and cyc[h0] < 0:
                h = h0
                while cyc[h] < 0:
                    cyc[h] = n_cyc
                    h = nxt[h]
                n_cyc += 1
        # an edge with the same ring on both sides (a bridge) bounds nothing either
        cut = False
        for e in range(n_edges):
            if alive[e] and cyc[2 * e] == cyc[2 * e + 1]:
                alive[e] = False
                cut = True
        if not cut:
            break

    big = np.iinfo(np.int64).max
    area2 = np.zeros(n_cyc, np.float64)  # twice the signed area
    first = np.full(n_cyc, -1, np.int64)
    length = np.zeros(n_cyc, np.int64)
    cx0, cy0 = np.full(n_cyc, big), np.full(n_cyc, big)
    cx1, cy1 = np.full(n_cyc, -big), np.full(n_cyc, -big)
    for h in range(2 * n_edges):
        c = cyc[h]
        if c < 0:
            continue
        u, w = (eu[h >> 1], ev[h >> 1]) if h & 1 == 0 else (ev[h >> 1], eu[h >> 1])
        area2[c] += float(nx[u] - nx[w]) * float(ny[u] + ny[w])  # counter-clockwise: positive
        length[c] += 1
        if first[c] < 0:
            first[c] = h
        cx0[c], cx1[c] = min(cx0[c], nx[u]), max(cx1[c], nx[u])
        cy0[c], cy1[c] = min(cy0[c], ny[u]), max(cy1[c], ny[u])
    parent = np.arange(n_nodes)
    for e in range(n_edges):
        if alive[e]:
            a, b = root(parent, eu[e]), root(parent, ev[e])
            if a != b:
                parent[a] = b
    component = np.empty(n_cyc, np.int64)
    for c in range(n_cyc):
        component[c] = root(parent, eu[first[c] >> 1])

    # counter-clockwise rings are faces; each clockwise one (a component's outside) is a hole of the
    # smallest face of another component around it, found through a grid over the faces' boxes
    shells = np.flatnonzero(area2 > 0)
    n_faces = len(shells)
    owner = np.full(n_cyc, -1, np.int64)
    if n_faces and n_faces < n_cyc:
        width, height = cx1[shells].max() + 1, cy1[shells].max() + 1
        size = cell_size(cx0[shells], cy0[shells], cx1[shells], cy1[shells], width, height, 1)
        ncx, ncy = width // size + 1, height // size + 1
        box_off, box_face = grid_cells(cx0[shells], cy0[shells], cx1[shells], cy1[shells], size, ncx, ncy)
        for c in range(n_cyc):
            if area2[c] >= 0:
                continue
            u = eu[first[c] >> 1] if first[c] & 1 == 0 else ev[first[c] >> 1]
            px, py = nx[u], ny[u]
            if px // size >= ncx or py // size >= ncy:
                continue
            cell = (px // size) * ncy + py // size
            best = -1
            for q in range(box_off[cell], box_off[cell + 1]):
                s = shells[box_face[q]]
                if component[s] == component[c] or px <= cx0[s] or px >= cx1[s] or py <= cy0[s] or py >= cy1[s]:
                    continue
                if best >= 0 and area2[s] >= area2[best]:
                    continue
                inside = False  # the node lies on no ring of another component: parity is exact
                h = first[s]
                while True:
                    a, b = (eu[h >> 1], ev[h >> 1]) if h & 1 == 0 else (ev[h >> 1], eu[h >> 1])
                    if (ny[a] > py) != (ny[b] > py):
                        side = (px - nx[a]) * (ny[b] - ny[a]) - (nx[b] - nx[a]) * (py - ny[a])
                        if (side < 0) == (ny[b] > ny[a]):
                            inside = not inside
                    h = nxt[h]
                    if h == first[s]:
                        break
                if inside:
                    best = s
            owner[c] = best

    face_of = np.full(n_cyc, -1, np.int64)
    for i in range(n_faces):
        face_of[shells[i]] = i
    rings_of = np.ones(n_faces, np.int64)
    for c in range(n_cyc):
        if owner[c] >= 0:
            rings_of[face_of[owner[c]]] += 1
    poly_off = np.zeros(n_faces + 1, np.int64)
    for i in range(n_faces):
        poly_off[i + 1] = poly_off[i] + rings_of[i]
    ring_cycle = np.empty(poly_off[-1], np.int64)
    slot = poly_off[:-1].copy()
    for i in range(n_faces):
        ring_cycle[slot[i]] = shells[i]
        slot[i] += 1
    for c in range(n_cyc):
        if owner[c] >= 0:
            f = face_of[owner[c]]
            ring_cycle[slot[f]] = c
            slot[f] += 1
    ring_off = np.zeros(len(ring_cycle) + 1, np.int64)
    for r in range(len(ring_cycle)):
        ring_off[r + 1] = ring_off[r] + length[ring_cycle[r]] + 1
    ring_nodes = np.empty(ring_off[-1], np.int64)
    seen = np.full(n_nodes, -1, np.int64)
    pinched = np.zeros(n_faces, np.bool_)
    for i in range(n_faces):
        for r in range(poly_off[i], poly_off[i + 1]):
            c = ring_cycle[r]
            k = ring_off[r]
            h = first[c]
            while True:
                v = eu[h >> 1] if h & 1 == 0 else ev[h >> 1]
                if seen[v] == r:
                    pinched[i] = True  # the ring touches itself: not a valid polygon as it stands
                seen[v] = r
                ring_nodes[k] = v
                k += 1
                h = nxt[h]
                if h == first[c]:
                    break
            ring_nodes[k] = ring_nodes[ring_off[r]]
    return ring_nodes, ring_off, poly_off, pinched


@njit(cache=True, nogil=True)
def interior_points(xy, ring_off, face_off, lines):
    """A point inside each face (rings ``ring_off``, faces ``face_off`` over coordinates ``xy``): the middle of
    the widest stretch inside it along ``lines`` horizontal lines spread over its height. GEOS's
    point_on_surface takes the one line through the middle, which can meet only a sliver of a face (a spike
    narrower than the grid step), where no plan's boundary is certain to be on the right side; NaN where no
    line meets the face."""
    n_faces = len(face_off) - 1
    out = np.full((n_faces, 2), np.nan)
    xs = np.empty(64)
    for f in range(n_faces):
        shell_lo, shell_hi = ring_off[face_off[f]], ring_off[face_off[f] + 1]
        y0, y1 = xy[shell_lo, 1], xy[shell_lo, 1]
        for v in range(shell_lo, shell_hi):
            y0, y1 = min(y0, xy[v, 1]), max(y1, xy[v, 1])
        best = -1.0
        for k in range(1, lines + 1):
            y = y0 + (y1 - y0) * k / (lines + 1)
            m = 0
            for r in range(face_off[f], face_off[f + 1]):
                for v in range(ring_off[r], ring_off[r + 1] - 1):
                    ay, by = xy[v, 1], xy[v + 1, 1]
                    if (ay > y) != (by > y):
                        xs = grow(xs, m + 1)
                        xs[m] = xy[v, 0] + (y - ay) * (xy[v + 1, 0] - xy[v, 0]) / (by - ay)
                        m += 1
            if m < 2:
                continue
            for a in range(1, m):  # insertion sort: a line crosses a face's rings a few times
                key = xs[a]
                b = a - 1
                while b >= 0 and xs[b] > key:
                    xs[b + 1] = xs[b]
                    b -= 1
                xs[b + 1] = key
            for i in range(0, m - 1, 2):
                if xs[i + 1] - xs[i] > best:
                    best = xs[i + 1] - xs[i]
                    out[f, 0], out[f, 1] = 0.5 * (xs[i] + xs[i + 1]), y
    return out
