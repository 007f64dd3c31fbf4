"""The compiled part of :mod:`multiplan.convexclip`: the clipping kernel itself, in numba (the one map's
noding and faces, :mod:`multiplan.facekernel`, and the loader's WKB pass, :mod:`multiplan.wkbkernel`, are
compiled into the same module).

At run time multiplan loads this kernel compiled ahead of time (``python -m multiplan.clipkernel`` builds
it once per machine, or the first detection that needs it does): an ahead-of-time module needs neither
numba nor LLVM when it runs, which saves some 160 MB of memory and half a second of loading per process.
Where it cannot be built (no C compiler), numba compiles the same functions just in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from numba import njit

from multiplan.convexclip import (
    EMPTY,
    EPS_REL,
    EPS_ROUNDING,
    FALLBACK,
    GUEST_INSIDE,
    MAX_CHAINS,
    MAX_WINDOW,
    NEW,
    RUN,
)
from multiplan.crs import _RQ2
from multiplan.facekernel import (  # noqa: F401 (compiled into the same module)
    grow,
    insert_near_vertices,
    interior_points,
    planar_faces,
    snap_round,
)
from multiplan.wkbkernel import (  # noqa: F401
    certainly_valid,
    excess_of_ring,
    multipolygon_ewkb,
    ring_excess,
    segment_keys,
    wkb_polygons,
)


@njit(cache=True, nogil=True)
def run_boxes(xy, ring_off):
    """Bounding box of every run of RUN segments of every ring (rings closed)."""
    n_runs = 0
    for r in range(len(ring_off) - 1):
        n_runs += (ring_off[r + 1] - ring_off[r] - 1 + RUN - 1) // RUN
    boxes = np.empty((n_runs, 4))
    run_off = np.empty(len(ring_off), np.int64)
    k = 0
    for r in range(len(ring_off) - 1):
        run_off[r] = k
        lo, hi = ring_off[r], ring_off[r + 1] - 1  # segments lo..hi-1
        for s in range(lo, hi, RUN):
            e = min(s + RUN, hi)
            x0 = x1 = xy[s, 0]
            y0 = y1 = xy[s, 1]
            for v in range(s + 1, e + 1):
                x0 = min(x0, xy[v, 0])
                x1 = max(x1, xy[v, 0])
                y0 = min(y0, xy[v, 1])
                y1 = max(y1, xy[v, 1])
            boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = x0, y0, x1, y1
            k += 1
    run_off[len(ring_off) - 1] = k
    return boxes, run_off


@njit(cache=True, nogil=True)
def grow2(buf, need):
    if need <= buf.shape[0]:
        return buf
    out = np.empty((max(need, 2 * buf.shape[0]), 2))
    out[:buf.shape[0]] = buf
    return out


@njit(cache=True, nogil=True)
def add_ring(lring, lrole, n_l, end, role):
    """Record ring n_l, ending at ``end`` in the pair's coordinates, as a shell (role 1) or a hole (0)."""
    lring = grow(lring, n_l + 2)
    lrole = grow(lrole, n_l + 2)
    lrole[n_l] = role
    lring[n_l + 1] = end
    return lring, lrole


@njit(cache=True, nogil=True)
def copy_ring(src, lo, hi, out_xy, out_ring, n_xy, n_ring):
    """Append ring src[lo:hi] to the output (which has room); the new counts."""
    out_ring[n_ring] = n_xy
    out_xy[n_xy:n_xy + hi - lo] = src[lo:hi]
    return n_xy + hi - lo, n_ring + 1


@njit(cache=True, nogil=True)
def inside_ring(px, py, xy, lo, hi):
    """Even-odd ray cast of (px, py) against the closed ring xy[lo:hi]."""
    c = False
    for j in range(lo, hi - 1):
        if ray_hits(xy[j, 0], xy[j, 1], xy[j + 1, 0], xy[j + 1, 1], px, py):
            c = not c
    return c


@njit(cache=True, nogil=True)
def ring_area(xy, lo, hi):
    a = 0.0
    for j in range(lo, hi - 1):
        a += xy[j, 0] * xy[j + 1, 1] - xy[j + 1, 0] * xy[j, 1]
    return a / 2


@njit(cache=True, nogil=True)
def outside_box(boxes, ru, bx0, by0, bx1, by1):
    return boxes[ru, 2] < bx0 or boxes[ru, 0] > bx1 or boxes[ru, 3] < by0 or boxes[ru, 1] > by1


@njit(cache=True, nogil=True)
def ray_hits(x0, y0, x1, y1, px, py):
    """Does the segment cross the ray from (px, py) towards +x (half-open in y)?"""
    if (y0 > py) != (y1 > py):
        return x0 + (py - y0) * (x1 - x0) / (y1 - y0) > px
    return False


@njit(cache=True, nogil=True)
def line_distances(x, y, q, cx, cy, ux, uy, out):
    """Signed distances of (x, y) to the window's q lines (positive inside) into ``out``; their minimum."""
    low = 1e300
    for i in range(q):
        out[i] = (y - cy[i]) * ux[i] - (x - cx[i]) * uy[i]
        low = min(low, out[i])
    return low


@njit(cache=True, nogil=True)
def host_contains(px, py, ring_lo, ring_hi, r_off, xy, boxes, run_off):
    """Even-odd ray cast of (px, py) against the host's rings, skipping the runs the ray misses."""
    inside = False
    for r in range(ring_lo, ring_hi):
        lo = r_off[r]
        for ru in range(run_off[r], run_off[r + 1]):
            if not (boxes[ru, 1] <= py < boxes[ru, 3] or boxes[ru, 1] < py <= boxes[ru, 3]) or boxes[ru, 2] <= px:
                continue
            s = lo + (ru - run_off[r]) * RUN
            for j in range(s, min(s + RUN, r_off[r + 1] - 1)):
                if ray_hits(xy[j, 0], xy[j, 1], xy[j + 1, 0], xy[j + 1, 1], px, py):
                    inside = not inside
    return inside


@njit(cache=True, nogil=True)
def window(g_xy, glo, ghi, wx, wy, wp, cx, cy, ux, uy, ln, cum):
    """The convex window of a closed ring, counter-clockwise from a corner: its vertices (wx, wy),
    its distinct lines (corners cx, cy; unit directions; lengths; the perimeter before each) and each
    vertex's position along the perimeter. Returns (m vertices, q lines, eps), q = 0 when not convex;
    eps is the distance under which points count as touching: a fraction of the window's size, and never
    less than some 64 rounding steps of its coordinates."""
    m = ghi - glo - 1
    rev = ring_area(g_xy, glo, ghi) < 0
    for i in range(m):
        src = glo + ((m - i) % m if rev else i)
        wx[i], wy[i] = g_xy[src, 0], g_xy[src, 1]
    size = max(wx[:m].max() - wx[:m].min(), wy[:m].max() - wy[:m].min())
    reach = max(np.abs(wx[:m]).max(), np.abs(wy[:m]).max())
    eps = max(EPS_REL * size, EPS_ROUNDING * reach)
    if not size > 100 * eps:
        return m, 0, eps
    first = -1
    for i in range(m):
        ax, ay = wx[i] - wx[(i + m - 1) % m], wy[i] - wy[(i + m - 1) % m]
        bx, by = wx[(i + 1) % m] - wx[i], wy[(i + 1) % m] - wy[i]
        la, lb = np.hypot(ax, ay), np.hypot(bx, by)
        if la <= eps or lb <= eps:
            return m, 0, eps  # repeated vertex
        turn = (ax * by - ay * bx) / (la * lb)
        if turn < -1e-10 or (turn <= 1e-10 and ax * bx + ay * by < 0):
            return m, 0, eps  # reflex vertex or spike: not convex
        if turn > 1e-10 and first < 0:
            first = i
    if first < 0:
        return m, 0, eps
    # rotate so that vertex 0 is a corner
    tx, ty = wx[:m].copy(), wy[:m].copy()
    for i in range(m):
        wx[i], wy[i] = tx[(first + i) % m], ty[(first + i) % m]
    corner = np.zeros(m, np.bool_)
    q = 0
    for i in range(m):
        ax, ay = wx[i] - wx[(i + m - 1) % m], wy[i] - wy[(i + m - 1) % m]
        bx, by = wx[(i + 1) % m] - wx[i], wy[(i + 1) % m] - wy[i]
        if (ax * by - ay * bx) / (np.hypot(ax, ay) * np.hypot(bx, by)) > 1e-10:
            corner[i] = True
            cx[q], cy[q] = wx[i], wy[i]
            q += 1
    if q < 3:
        return m, 0, eps
    cum[0] = 0.0
    for i in range(q):
        dx, dy = cx[(i + 1) % q] - cx[i], cy[(i + 1) % q] - cy[i]
        ln[i] = np.hypot(dx, dy)
        ux[i], uy[i] = dx / ln[i], dy / ln[i]
        cum[i + 1] = cum[i] + ln[i]
    line = -1
    for i in range(m):
        if corner[i]:
            line += 1
        wp[i] = cum[line] + (wx[i] - cx[line]) * ux[line] + (wy[i] - cy[line]) * uy[line]
    return m, q, eps


@njit(cache=True, nogil=True)
def clip_pairs(g_xy, g_lo, g_hi, pair_host, h_ring_lo, h_ring_hi, r_off, r_shell, h_xy, boxes, run_off):
    """Every pair k: the convex polygon g_xy[g_lo[k]:g_hi[k]] (a closed ring) ∩ the host
    pair_host[k], whose rings are h_ring_lo[host]..h_ring_hi[host] (closed; shells counter-clockwise,
    holes clockwise). Returns each pair's outcome and the NEW geometries as ragged multipolygon arrays
    (coordinates, ring offsets, polygon offsets, pair offsets)."""
    n_pairs = len(pair_host)
    status = np.zeros(n_pairs, np.int8)
    # pieces drawn from several host rings: rings of a valid polygon may touch at a point, which the
    # piece would then pass twice; the caller checks those pieces' validity
    several = np.zeros(n_pairs, np.bool_)
    out_xy = np.empty((4096, 2))
    out_ring = np.zeros(256, np.int64)
    out_poly = np.zeros(64, np.int64)
    out_geom = np.zeros(n_pairs + 1, np.int64)
    n_xy = n_ring = n_poly = 0
    wx, wy, wp = np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW)
    cx, cy, ux, uy, ln = (np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW),
                          np.empty(MAX_WINDOW), np.empty(MAX_WINDOW))
    d0, d1 = np.empty(MAX_WINDOW), np.empty(MAX_WINDOW)
    cum = np.empty(MAX_WINDOW + 1)
    # one pair's rings, before they are known good: coordinates, ring offsets, ring roles
    lxy = np.empty((1024, 2))
    lring = np.zeros(64, np.int64)
    lrole = np.zeros(64, np.int8)  # 1 shell, 0 hole
    # chains: their vertices' span in cxy, and where they enter and leave along the window's perimeter
    ch_lo, ch_hi = np.empty(MAX_CHAINS, np.int64), np.empty(MAX_CHAINS, np.int64)
    ch_in, ch_out = np.empty(MAX_CHAINS), np.empty(MAX_CHAINS)
    # chain vertices: at most every vertex of the biggest host plus two crossings per segment
    longest = 0
    for h in range(len(h_ring_lo)):
        longest = max(longest, r_off[h_ring_hi[h]] - r_off[h_ring_lo[h]])
    cxy = np.empty((3 * longest + 8, 2))
    for k in range(n_pairs):
        out_geom[k] = n_poly
        glo, ghi = g_lo[k], g_hi[k]
        if not 4 <= ghi - glo <= MAX_WINDOW + 1:
            status[k] = FALLBACK
            continue
        m, q, eps = window(g_xy, glo, ghi, wx, wy, wp, cx, cy, ux, uy, ln, cum)
        if q == 0:
            status[k] = FALLBACK
            continue
        perimeter = cum[q]
        bx0, bx1 = wx[:m].min() - eps, wx[:m].max() + eps
        by0, by1 = wy[:m].min() - eps, wy[:m].max() + eps
        px, py = wx[0], wy[0]
        # a disk inside the window: vertices in it need no test against each line
        ocx, ocy = cx[:q].mean(), cy[:q].mean()
        rin = 1e300
        for i in range(q):
            rin = min(rin, (ocy - cy[i]) * ux[i] - (ocx - cx[i]) * uy[i])
        rin2 = (rin - 2 * eps) ** 2 if rin > 2 * eps else -1.0
        host = pair_host[k]
        n_ch = n_c = n_l = 0
        used = 0
        lring[0] = 0
        bad = False
        for r in range(h_ring_lo[host], h_ring_hi[host]):
            lo, hi = r_off[r], r_off[r + 1]
            n = hi - lo - 1
            rl, rh = run_off[r], run_off[r + 1]
            j0 = -1  # a vertex certainly outside to start from: the first of a run clear of the window
            for ru in range(rl, rh):
                if outside_box(boxes, ru, bx0, by0, bx1, by1):
                    j0 = (ru - rl) * RUN
                    break
            if j0 < 0:  # every run near the window: look for a vertex outside it
                for j in range(n):
                    dmin = line_distances(h_xy[lo + j, 0], h_xy[lo + j, 1], q, cx, cy, ux, uy, d0)
                    if abs(dmin) <= eps:
                        bad = True
                        break
                    if dmin < 0:
                        j0 = j
                        break
                if bad:
                    break
            if j0 < 0:  # the whole ring inside the window
                used += 1
                lxy = grow2(lxy, lring[n_l] + hi - lo)
                lxy[lring[n_l]:lring[n_l] + hi - lo] = h_xy[lo:hi]
                lring, lrole = add_ring(lring, lrole, n_l, lring[n_l] + hi - lo, 1 if r_shell[r] else 0)
                n_l += 1
                continue
            chains_before = n_ch
            state_in = False
            step = 0
            have = -1  # the vertex d1 describes
            m0 = m1 = 0.0
            in_prev = meas_prev = False
            while step < n:
                j = j0 + step if j0 + step < n else j0 + step - n
                if j % RUN == 0 and outside_box(boxes, rl + j // RUN, bx0, by0, bx1, by1):
                    if state_in:
                        bad = True
                        break
                    step += min(RUN, n - j)
                    continue
                x0, y0 = h_xy[lo + j, 0], h_xy[lo + j, 1]
                x1, y1 = h_xy[lo + j + 1, 0], h_xy[lo + j + 1, 1]
                step += 1
                if x0 == x1 and y0 == y1:  # a repeated vertex: nothing to clip
                    continue
                if max(x0, x1) < bx0 or min(x0, x1) > bx1 or max(y0, y1) < by0 or min(y0, y1) > by1:
                    if state_in:
                        bad = True
                        break
                    continue
                # which ends are inside: surely so within the window's inscribed disk, else by their signed
                # distances to every line (positive inside), kept for the next segment's start
                if have == j:
                    in0, meas0 = in_prev, meas_prev
                    if meas0:
                        for i in range(q):
                            d0[i] = d1[i]
                        m0 = m1
                else:
                    meas0 = (x0 - ocx) ** 2 + (y0 - ocy) ** 2 >= rin2
                    if meas0:
                        m0 = line_distances(x0, y0, q, cx, cy, ux, uy, d0)
                    in0 = not meas0 or m0 > 0
                meas1 = (x1 - ocx) ** 2 + (y1 - ocy) ** 2 >= rin2
                if meas1:
                    m1 = line_distances(x1, y1, q, cx, cy, ux, uy, d1)
                in1 = not meas1 or m1 > 0
                have = j + 1 if j + 1 < n else 0
                in_prev, meas_prev = in1, meas1
                if (meas0 and abs(m0) <= eps) or (meas1 and abs(m1) <= eps):
                    bad = True  # a vertex on the window's boundary
                    break
                if in0 and in1:  # wholly inside: the chain goes on
                    if not state_in:
                        bad = True
                        break
                    cxy[n_c, 0], cxy[n_c, 1] = x1, y1
                    n_c += 1
                    continue
                if not meas0:
                    line_distances(x0, y0, q, cx, cy, ux, uy, d0)
                if not meas1:
                    m1 = line_distances(x1, y1, q, cx, cy, ux, uy, d1)
                    meas_prev = True
                # the window's first vertex on this segment would make the ray-cast ambiguous
                sx, sy = x1 - x0, y1 - y0
                seg = np.hypot(sx, sy)
                if abs((px - x0) * sy - (py - y0) * sx) <= eps * seg and \
                        -eps <= ((px - x0) * sx + (py - y0) * sy) / seg <= seg + eps:
                    bad = True
                    break
                tin, tout, ein, eout = 0.0, 1.0, -1, -1
                miss = False
                for i in range(q):
                    a, b = d0[i], d1[i]
                    if a < 0 and b < 0:
                        miss = True
                        break
                    if a >= 0 and b >= 0:
                        continue
                    t = a / (a - b)
                    if a < 0:
                        if t > tin:
                            tin, ein = t, i
                    elif t < tout:
                        tout, eout = t, i
                if not miss and (tout - tin) * seg <= eps:
                    if (tout - tin) * seg > -eps:
                        bad = True  # grazing a corner
                        break
                    miss = True
                if miss:
                    if state_in:
                        bad = True
                        break
                    continue
                if not state_in:  # entering: a new chain
                    if ein < 0 or n_ch == MAX_CHAINS:
                        bad = True
                        break
                    ex, ey = x0 + tin * sx, y0 + tin * sy
                    u = ((ex - cx[ein]) * ux[ein] + (ey - cy[ein]) * uy[ein]) / ln[ein]
                    if u * ln[ein] <= eps or (1 - u) * ln[ein] <= eps:
                        bad = True  # crossing at a corner
                        break
                    cxy[n_c, 0], cxy[n_c, 1] = ex, ey
                    ch_lo[n_ch], ch_in[n_ch] = n_c, cum[ein] + u * ln[ein]
                    n_c += 1
                    state_in = True
                if eout >= 0:  # leaving: the chain ends on the window's boundary
                    ex, ey = x0 + tout * sx, y0 + tout * sy
                    u = ((ex - cx[eout]) * ux[eout] + (ey - cy[eout]) * uy[eout]) / ln[eout]
                    if u * ln[eout] <= eps or (1 - u) * ln[eout] <= eps:
                        bad = True
                        break
                    cxy[n_c, 0], cxy[n_c, 1] = ex, ey
                    n_c += 1
                    ch_hi[n_ch], ch_out[n_ch] = n_c, cum[eout] + u * ln[eout]
                    n_ch += 1
                    state_in = False
                else:
                    cxy[n_c, 0], cxy[n_c, 1] = x1, y1
                    n_c += 1
            if bad or state_in:
                bad = True
                break
            if n_ch > chains_before:
                used += 1
        if not bad and n_ch:
            # boundary events in perimeter order must alternate entry, exit, well apart
            ev = np.empty(2 * n_ch)
            ev[0::2] = ch_in[:n_ch]
            ev[1::2] = ch_out[:n_ch]
            for o in range(2 * n_ch):  # a crossing on a vertex of the window: GEOS decides
                for i in range(m):
                    if abs(ev[o] - wp[i]) <= 4 * eps:
                        bad = True
            order = np.argsort(ev)
            nxt = np.empty(n_ch, np.int64)
            for o in range(2 * n_ch):
                if bad:
                    break
                a_ev, b_ev = order[o], order[(o + 1) % (2 * n_ch)]
                gap = ev[b_ev] - ev[a_ev] + (perimeter if o == 2 * n_ch - 1 else 0.0)
                if gap <= 4 * eps or (a_ev % 2) == (b_ev % 2):
                    bad = True
                    break
                if a_ev % 2 == 1:  # an exit: the next event is the next chain's entry
                    nxt[a_ev // 2] = b_ev // 2
            seen = np.zeros(n_ch, np.bool_)
            for c0 in range(n_ch):
                if bad:
                    break
                if seen[c0]:
                    continue
                start = lring[n_l]
                w = start
                c = c0
                while True:
                    seen[c] = True
                    cnt = ch_hi[c] - ch_lo[c]
                    lxy = grow2(lxy, w + cnt + m + 1)
                    lxy[w:w + cnt] = cxy[ch_lo[c]:ch_hi[c]]
                    w += cnt
                    # the window's vertices strictly between this exit and the next entry
                    a_p, b_p = ch_out[c], ch_in[nxt[c]]
                    i0 = 0
                    while i0 < m and wp[i0] <= a_p:
                        i0 += 1
                    for s in range(m):
                        i = (i0 + s) % m
                        if (a_p < wp[i] < b_p) if a_p < b_p else (wp[i] > a_p or wp[i] < b_p):
                            lxy[w, 0], lxy[w, 1] = wx[i], wy[i]
                            w += 1
                        else:
                            break
                    c = nxt[c]
                    if c == c0:
                        break
                    if seen[c]:
                        bad = True
                        break
                lxy[w] = lxy[start]
                lring, lrole = add_ring(lring, lrole, n_l, w + 1, 1)
                n_l += 1
        if bad:
            status[k] = FALLBACK
            continue
        window_inside = n_ch == 0 and host_contains(px, py, h_ring_lo[host], h_ring_hi[host], r_off, h_xy,
                                                  boxes, run_off)
        if n_l == 0:
            status[k] = GUEST_INSIDE if window_inside else EMPTY
            continue
        if window_inside:  # the window's boundary lies inside the host: it is a shell, around kept rings
            start = lring[n_l]
            lxy = grow2(lxy, start + m + 1)
            lxy[start:start + m, 0] = wx[:m]
            lxy[start:start + m, 1] = wy[:m]
            lxy[start + m] = lxy[start]
            lring, lrole = add_ring(lring, lrole, n_l, start + m + 1, 1)
            n_l += 1
        # each hole goes to the smallest shell around it
        owner = np.full(n_l, -1, np.int64)
        n_shell = 0
        for h in range(n_l):
            if lrole[h] == 1:
                n_shell += 1
                continue
            best = 1e300
            for s in range(n_l):
                if lrole[s] == 1 and inside_ring(lxy[lring[h], 0], lxy[lring[h], 1], lxy, lring[s], lring[s + 1]):
                    a = abs(ring_area(lxy, lring[s], lring[s + 1]))
                    if a < best:
                        best, owner[h] = a, s
            if owner[h] < 0:
                bad = True
                break
        if bad or n_shell == 0:
            status[k] = FALLBACK
            continue
        # write polygon by polygon: each shell, then its holes
        out_xy = grow2(out_xy, n_xy + lring[n_l])
        out_ring = grow(out_ring, n_ring + n_l + 2)
        out_poly = grow(out_poly, n_poly + n_shell + 2)
        for s in range(n_l):
            if lrole[s] != 1:
                continue
            out_poly[n_poly] = n_ring
            n_poly += 1
            n_xy, n_ring = copy_ring(lxy, lring[s], lring[s + 1], out_xy, out_ring, n_xy, n_ring)
            for h in range(n_l):
                if lrole[h] == 0 and owner[h] == s:
                    n_xy, n_ring = copy_ring(lxy, lring[h], lring[h + 1], out_xy, out_ring, n_xy, n_ring)
        status[k] = NEW
        several[k] = used > 1
    out_geom[n_pairs] = n_poly
    out_poly[n_poly] = n_ring
    out_ring[n_ring] = n_xy
    return status, out_xy[:n_xy], out_ring[:n_ring + 1], out_poly[:n_poly + 1], out_geom, several


@njit(cache=True, nogil=True)
def ragged_areas(xy, ring_off, poly_off, geom_off):
    """Ellipsoidal areas (m²) of ragged lon/lat multipolygons, as :func:`multiplan.crs.ellipsoidal_area`
    computes them (the exact spherical excess on the authalic sphere), without building the geometries'
    ring tables: the kernel's pieces are measured where their coordinates already are."""
    n_geoms = len(geom_off) - 1
    out = np.zeros(n_geoms)
    for g in range(n_geoms):
        total = 0.0
        for p in range(geom_off[g], geom_off[g + 1]):
            for r in range(poly_off[p], poly_off[p + 1]):
                excess = excess_of_ring(xy, ring_off[r], ring_off[r + 1])
                ring = abs(excess) * _RQ2
                total += ring if r == poly_off[p] else -ring
        out[g] = total
    return out


@njit(cache=True, nogil=True)
def convex_rings(xy, ring_off):
    """Which closed rings make a convex window (as :func:`window` decides it)."""
    ok = np.zeros(len(ring_off) - 1, np.bool_)
    wx, wy, wp, cx = np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW)
    cy, ux, uy, ln = np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW), np.empty(MAX_WINDOW)
    cum = np.empty(MAX_WINDOW + 1)
    for r in range(len(ring_off) - 1):
        if 4 <= ring_off[r + 1] - ring_off[r] <= MAX_WINDOW + 1:
            ok[r] = window(xy, ring_off[r], ring_off[r + 1], wx, wy, wp, cx, cy, ux, uy, ln, cum)[1] > 0
    return ok


# The entry points and their types: the compiled module's functions take exactly these (C-contiguous
# inputs) and return these.
SIGNATURES = {
    "run_boxes": "Tuple((f8[:,::1], i8[::1]))(f8[:,::1], i8[::1])",
    "ragged_areas": "f8[::1](f8[:,:], i8[:], i8[:], i8[:])",
    "convex_rings": "b1[::1](f8[:,::1], i8[::1])",
    "clip_pairs": "Tuple((i1[:], f8[:,:], i8[:], i8[:], i8[:], b1[:]))(f8[:,::1], i8[::1], i8[::1], i8[::1], "
                  "i8[::1], i8[::1], i8[::1], b1[::1], f8[:,::1], f8[:,::1], i8[::1])",
    "insert_near_vertices": "Tuple((f8[:], f8[:], i8[:]))(f8[::1], f8[::1], i8[::1], f8)",
    "snap_round": "UniTuple(i8[:], 4)(i8[::1], i8[::1], i8[::1])",
    "interior_points": "f8[:,:](f8[:,::1], i8[::1], i8[::1], i8)",
    "planar_faces": "Tuple((i8[:], i8[:], i8[:], b1[:]))(i8[::1], i8[::1], i8[::1], i8[::1])",
    "wkb_polygons": "Tuple((f8[:,::1], i8[::1], i8[::1], i8[::1], i1[::1]))(u1[::1], i8[::1])",
    "ring_excess": "f8[::1](f8[:,::1], i8[::1])",
    "multipolygon_ewkb": "Tuple((u1[::1], i8[::1]))(f8[:,::1], i8[::1], i8[::1], i8[::1], b1[::1], i8)",
    "segment_keys": "Tuple((u8[::1], i8[::1]))(f8[:,::1], i8[::1], b1[::1], f8)",
    "certainly_valid": "b1[::1](f8[:,::1], i8[::1], i8[::1], i8[::1])",
}


def build(directory: Path, name: str) -> None:
    """Compile the entry points ahead of time into the extension module ``name`` in ``directory``."""
    from numba.pycc import CC
    from numba.pycc import compiler as module_compiler

    class ReleasingGil(module_compiler.Flags):
        """The compiler's flags, with the wrapper releasing the GIL as ``nogil=True`` does: pycc has no
        option for it, and the kernel runs on several threads."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    plain, module_compiler.Flags = module_compiler.Flags, ReleasingGil
    try:
        compiler = CC(name)
        compiler.output_dir = str(directory)
        compiler.verbose = False
        for entry, signature in SIGNATURES.items():
            compiler.export(entry, signature)(globals()[entry].py_func)
        compiler.compile()
    finally:
        module_compiler.Flags = plain


if __name__ == "__main__":
    if len(sys.argv) == 3:
        build(Path(sys.argv[1]), sys.argv[2])
    else:  # no arguments: build where multiplan looks for it
        from multiplan.convexclip import compiled_kernel
        print("compiled kernel:", "ready" if compiled_kernel() is not None else "could not be built (numba JIT is used)")
