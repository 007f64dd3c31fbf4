"""Intersections of small convex polygons with big polygons, compiled: the province-scale overlay kernel.

A land-use cell against a red line is the commonest pair of a detection run, and GEOS's general overlay
costs some 0.5 ms for it (it nodes every vertex of the red line near the cell). A convex cell allows a much
cheaper exact method (Weiler-Atherton clipping against a convex window):

- each segment of the big polygon is clipped to the cell's half-planes (Cyrus-Beck); the parts inside form
  chains from an entry point on the cell's boundary to an exit point;
- walking the cell's boundary counter-clockwise, every exit is followed by the next entry: chains and the
  cell's boundary between them close the result's shells;
- rings wholly inside the cell are kept (shells stay shells, holes are given to the shell around them);
  with no crossing at all the cell itself is inside or outside the polygon (one ray-cast).

Segments far from the cell are skipped in runs (a bounding box per run of ``RUN`` segments), so a pair
costs in proportion to the big polygon's vertices near the cell, not its whole size.

Exactness: vertices inside the cell are copied, crossing points computed as GEOS computes them (to the
last bits). Whenever the answer could depend on rounding (a vertex within ``EPS_REL`` of the cell's size,
and never less than 64 rounding steps, from its boundary; a crossing at a corner; boundary points too close
to order) or the input is not as expected (the cell not convex, inconsistent crossings from an invalid
polygon), the pair is handed back, and the caller uses GEOS for it. Rings of a valid polygon may touch at a
point; a piece drawn from several rings is checked with GEOS's validity test and handed back when the
touch made it invalid. So the kernel never decides a hard case.

The kernel itself is :mod:`multiplan.clipkernel`; this module prepares its input and takes its output apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import shapely

from multiplan import crs

log = logging.getLogger(__name__)

# Pair outcomes
NEW, FALLBACK, GUEST_INSIDE, EMPTY = 0, 1, 2, 3
# Distances below this fraction of the cell's size count as touching: GEOS decides those pairs.
EPS_REL = 1e-9
# ... and never below this many rounding steps of the coordinates (tiny windows far from 0,0).
EPS_ROUNDING = 64 * np.finfo(float).eps
# Segments per run with one bounding box.
RUN = 32
# The kernel's limits; beyond them a pair goes to GEOS.
MAX_WINDOW = 64
MAX_CHAINS = 256
# Cells looked at per step by suitable_guests (each step clones their polygons).
GUEST_CHUNK = 50_000

_KERNEL_SOURCES = tuple(Path(__file__).with_name(name) for name in ("clipkernel.py", "facekernel.py", "wkbkernel.py"))
_loading = threading.Lock()
_kernel: ModuleType | None = None


def _kernel_dir() -> Path:
    """Where the compiled kernel lives: ``MULTIPLAN_KERNEL_DIR``, else beside the package when it is
    writable (a checkout), else the user's cache."""
    if os.environ.get("MULTIPLAN_KERNEL_DIR"):
        return Path(os.environ["MULTIPLAN_KERNEL_DIR"])
    beside = Path(__file__).parent / "_compiled"
    if os.access(beside if beside.exists() else beside.parent, os.W_OK):
        return beside
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "multiplan"


def _kernel_name() -> str:
    """The compiled module's name: it changes with the kernel's source and constants (here and in
    multiplan.crs), numba and Python."""
    key = hashlib.sha256(b"".join(source.read_bytes() for source in _KERNEL_SOURCES))
    key.update(repr((NEW, FALLBACK, GUEST_INSIDE, EMPTY, EPS_REL, EPS_ROUNDING, RUN, MAX_WINDOW, MAX_CHAINS,
                     crs._E, crs._E2, crs._QP, crs._RQ2)).encode())
    key.update(f"{importlib.metadata.version('numba')} {sys.version} {sys.platform}".encode())
    return f"clipkernel_{key.hexdigest()[:16]}"


def compiled_kernel() -> ModuleType | None:
    """The kernel compiled ahead of time, built first if it is not there yet (once per machine, some 20 s,
    in a child process so that this one never loads LLVM); None when it cannot be built."""
    name = _kernel_name()
    directory = _kernel_dir()
    path = directory / (name + importlib.machinery.EXTENSION_SUFFIXES[0])
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as lock:  # one build at a time, across processes
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                log.info("compiling the overlay kernel into %s (once)", directory)
                # built aside and moved in whole: an interrupted build leaves no broken module behind
                with tempfile.TemporaryDirectory(dir=directory) as aside:
                    done = subprocess.run([sys.executable, "-m", "multiplan.clipkernel", aside, name],
                                          capture_output=True, text=True)
                    built = Path(aside) / path.name
                    if done.returncode != 0 or not built.exists():
                        log.warning("the overlay kernel could not be compiled ahead of time; numba compiles "
                                    "it at run time instead: %s", done.stderr.strip()[-500:])
                        return None
                    os.replace(built, path)
                for stale in directory.glob("clipkernel_*"):  # builds of earlier sources
                    if stale != path:
                        stale.unlink(missing_ok=True)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except (OSError, ImportError) as exc:
        log.warning("the compiled overlay kernel is unavailable (%s); numba compiles it at run time", exc)
        return None


def kernel() -> ModuleType:
    """The kernel's entry points: compiled ahead of time, else numba's just-in-time functions."""
    global _kernel
    with _loading:
        if _kernel is None:
            # MULTIPLAN_KERNEL=jit: numba's functions, as where no compiler is available
            _kernel = None if os.environ.get("MULTIPLAN_KERNEL") == "jit" else compiled_kernel()
            if _kernel is None:
                from multiplan import clipkernel
                _kernel = clipkernel
        return _kernel


def _ragged_rings(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, ring offsets, shell flags and each geometry's first and last+1 ring, of polygons and
    multipolygons."""
    kind, xy, offsets = shapely.to_ragged_array(geoms, include_z=False)
    if kind == shapely.GeometryType.POLYGON:
        ring_off, geom_rings = offsets
        shell_rings = geom_rings[:-1]
    else:
        ring_off, poly_rings, geom_polys = offsets
        geom_rings = poly_rings[geom_polys]
        shell_rings = poly_rings[:-1]
    is_shell = np.zeros(len(ring_off) - 1, dtype=np.bool_)
    is_shell[shell_rings[shell_rings < len(is_shell)]] = True
    return (np.ascontiguousarray(xy, dtype=float), ring_off.astype(np.int64), is_shell,
            geom_rings[:-1].astype(np.int64), geom_rings[1:].astype(np.int64))


def _by_identity(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first position of each distinct geometry object, and each position's index among them: a cell or
    a big polygon comes once per pair it is in."""
    ids = np.fromiter((id(g) for g in geoms), dtype=np.int64, count=len(geoms))
    _, first, which = np.unique(ids, return_index=True, return_inverse=True)
    return first, which.ravel().astype(np.int64)


def _single_rings(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of each geometry's one ring, and where each geometry's coordinates start: polygons without holes, or
    multipolygons of one such part (as plans are stored). Any other geometry gets no coordinates."""
    types = shapely.get_type_id(geoms)
    one = ((types == 3) | ((types == 6) & (shapely.get_num_geometries(geoms) == 1))) & ~shapely.is_empty(geoms)
    one[one] = shapely.get_num_interior_rings(shapely.get_geometry(geoms[one], 0)) == 0
    counts = np.zeros(len(geoms), dtype=np.int64)
    counts[one] = shapely.get_num_coordinates(geoms[one])
    offsets = np.zeros(len(geoms) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    # the geometries' coordinates are their rings' (no ring objects built, as get_rings would)
    return np.ascontiguousarray(shapely.get_coordinates(geoms[one]), dtype=float), offsets


def suitable_guests(geoms: np.ndarray) -> np.ndarray:
    """Which geometries the kernel takes as the small side: convex polygons (or multipolygons of one such
    part) without holes, at most MAX_WINDOW vertices."""
    geoms = np.asarray(geoms, dtype=object)
    first, which = _by_identity(geoms)  # each cell looked at once
    cells = geoms[first]
    convex = np.zeros(len(cells), dtype=bool)
    compiled = kernel()
    for lo in range(0, len(cells), GUEST_CHUNK):  # reading a part clones it: a bounded number at a time
        xy, offsets = _single_rings(cells[lo:lo + GUEST_CHUNK])
        convex[lo:lo + GUEST_CHUNK] = compiled.convex_rings(xy, offsets)  # a ring of no coordinates is not convex
    return convex[which]


def intersect(guests: np.ndarray, hosts: np.ndarray, chunks: int = 1,
              pool=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``guests[k] ∩ hosts[k]`` where the kernel can decide it exactly; the second array says which
    pairs it decided (the others are for GEOS); the third has the ellipsoidal areas of the pieces it
    built (NaN for the others: a guest wholly inside comes back as itself, unmeasured). Guests must pass :func:`suitable_guests`; hosts are
    polygons or multipolygons, typically few and big, shared by many pairs. ``pool`` (an executor) runs
    ``chunks`` slices of the pairs side by side: the kernel releases the GIL."""
    guests = np.asarray(guests, dtype=object)
    hosts = np.asarray(hosts, dtype=object)
    n = len(guests)
    out = np.empty(n, dtype=object)
    handled = np.zeros(n, dtype=bool)
    areas = np.full(n, np.nan)
    if not n:
        return out, handled, areas
    # hosts come by the thousand per big polygon: each slice of the pairs takes apart only its own hosts
    first, pair_host = _by_identity(hosts)
    unique_hosts = hosts[first]
    order = np.argsort(pair_host, kind="stable")  # pairs in host order: a slice meets few hosts
    compiled = kernel()

    def one(span: tuple[int, int]) -> None:
        """Clip, measure and build one slice of the pairs; its buffers go as soon as its pieces exist."""
        pairs = order[span[0]:span[1]]
        slice_host = pair_host[pairs]
        h0 = slice_host[0]
        # shells counter-clockwise, holes clockwise
        h_xy, r_off, r_shell, h_lo, h_hi = _ragged_rings(shapely.orient_polygons(unique_hosts[h0:slice_host[-1] + 1]))
        boxes, run_off = compiled.run_boxes(h_xy, r_off)
        # each guest's ring (an empty guest, or one of several rings, has none: its pair goes to GEOS)
        g_xy, g_off = _single_rings(guests[pairs])
        status, xy, ring_off, poly_off, geom_off, several = compiled.clip_pairs(
            g_xy, g_off[:-1], g_off[1:], slice_host - h0, h_lo, h_hi, r_off, r_shell, h_xy, boxes, run_off)
        measured = compiled.ragged_areas(xy, ring_off, poly_off, geom_off)
        built = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, xy, (ring_off, poly_off, geom_off))
        suspect = np.flatnonzero((status == NEW) & several)
        status[suspect[~shapely.is_valid(built[suspect])]] = FALLBACK  # rings touching inside the cell
        new, inside, empty = status == NEW, status == GUEST_INSIDE, status == EMPTY
        out[pairs[new]] = built[new]  # every slice writes its own pairs
        out[pairs[inside]] = guests[pairs[inside]]
        out[pairs[empty]] = shapely.MultiPolygon()
        areas[pairs[new]] = measured[new]
        areas[pairs[empty]] = 0.0
        handled[pairs] = status != FALLBACK

    bounds = np.linspace(0, n, max(1, chunks) + 1).astype(int)
    spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    if pool is not None and len(spans) > 1:
        for _ in pool.map(one, spans):  # raises a span's error, if any
            pass
    else:
        for span in spans:
            one(span)
    return out, handled, areas
