"""Conflict detection on a Dask cluster: a rule's features cut into spatial partitions, each run by `detect`.

One rule at a time, one side is split into partitions along a Hilbert curve (each feature in exactly one
partition, so no pair of features is found twice); every partition goes to a worker with what it needs of
the rest and is run there by :func:`multiplan.conflicts.detect`, the local engine itself. The patches of the
partitions are concatenated, suppressed slivers summed, unknowns gathered. The results are the local
engine's, row for row: every patch is computed from its own pair of features, or (containment) from an A
feature and the B features meeting it, or (raster) from an A feature and the DEM's steep area, all of
which its partition is sent.

Dask is imported only here, and only when a cluster is used: plain commands do not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from multiplan.conflicts import Detection, detect, select
from multiplan.crs import STORAGE_CRS
from multiplan.errors import SchedulerError
from multiplan.io import Raster
from multiplan.rules import RuleSpec
from multiplan.rules.spec import RuleSide

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["KINDS", "SchedulerError", "dask_client", "detect_distributed"]

#: The kinds run in partitions; any other kind goes to the local engine as it is.
KINDS = ("overlap", "containment", "corridor", "raster")
#: Features of the split side per partition, at most (and at least two partitions per worker thread).
PARTITION_SIZE = 50_000
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT_S = 10

Progress = Callable[[int, int], None]


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, else of a local cluster of ``n_workers`` processes (one
    thread each, no dashboard) that is shut down afterwards."""
    from distributed import Client, LocalCluster

    if scheduler is None:  # the scheduler's HTTP endpoints on a free local port, not on a dashboard's 8787
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
        return
    from distributed.comm.addressing import get_address_host_port

    try:
        get_address_host_port(scheduler)  # a malformed address, before a client half-made lingers
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SchedulerError("scheduler_unreachable", scheduler=scheduler, detail=detail) from exc
    with client:
        yield client


def detect_distributed(rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int],
                       rasters: dict[str, Raster] | None, client: Client, *, npartitions: int | None = None,
                       progress: Progress | None = None) -> Detection:
    """Run ``rule`` as :func:`multiplan.conflicts.detect` does, in spatial partitions on ``client``'s workers.

    Parameters
    ----------
    rule, frames, versions, rasters
        As for :func:`multiplan.conflicts.detect`.
    client
        A ``distributed.Client``; its workers must be able to import multiplan.
    npartitions
        How many partitions (default: two per worker thread, more when a partition would exceed
        ``PARTITION_SIZE`` features; for raster rules one per worker thread).
    progress
        Called with (partitions done, partitions) as partitions finish.

    Returns
    -------
    Detection
        The local engine's patches, suppressed slivers and unknowns, with the patches in partition order
        (:func:`multiplan.detection.canonical` puts either engine's findings in one order).

    Notes
    -----
    Overlap, containment and raster rules split side A; an overlap or containment partition also gets
    every B feature whose bounds meet one of its A features. Corridor rules split side B and send every
    network line to every partition: the corridors are buffered in the Gauss-Krüger zone holding most of
    the lines, so each partition must see all of them. A raster partition gets the whole DEM and
    polygonises its steep cells again (the steep area is one feature, made once per call of the local
    engine; a part of the grid would give edges a rounding error apart), so raster rules have no more
    partitions than worker threads by default.
    """
    if rule.kind not in KINDS or (rule.kind == "raster" and rule.params["raster"]["source"] not in (rasters or {})):
        return detect(rule, frames, versions, rasters)  # an error, or a finding that needs no computation
    split, other = ("b", "a") if rule.kind == "corridor" else ("a", "b")
    split_rows = _side_rows(frames, getattr(rule, split))
    n = sum(len(f) for f in split_rows.values())
    if n == 0:
        return detect(rule, frames, versions, rasters)
    if npartitions is None:  # a raster partition polygonises the whole DEM: no more of them than threads
        threads = sum(client.nthreads().values())
        npartitions = threads if rule.kind == "raster" else max(2 * threads, math.ceil(n / PARTITION_SIZE))
    chunks = _hilbert_chunks(split_rows, max(1, min(npartitions, n)))
    # a layer on both sides goes by another name on the unsplit side, so partitions never mix the two
    other_side: RuleSide | None = getattr(rule, other)
    real = {f"{lid}@{other}": lid for lid in (other_side.layers if other_side else ()) if lid in split_rows}
    rule_run, versions_run = rule, versions
    if real:
        alias = {lid: name for name, lid in real.items()}
        other_side = replace(other_side, layers=tuple(alias.get(lid, lid) for lid in other_side.layers))
        rule_run = replace(rule, **{other: other_side})
        versions_run = {**versions, **{name: versions[lid] for name, lid in real.items() if lid in versions}}
    other_rows = _side_rows({**frames, **{name: frames[lid] for name, lid in real.items() if lid in frames}},
                            other_side) if other_side else {}

    futures = []
    try:
        if rule.kind == "corridor":  # every line to every partition: sent to each worker once
            [shared] = client.scatter([other_rows], hash=False, broadcast=True)
            others = [shared] * len(chunks)
        else:
            trees = {lid: shapely.STRtree(f.geometry.values) for lid, f in other_rows.items()}
            others = client.scatter([_near(other_rows, trees, geoms) for _, geoms in chunks], hash=False)
        owns = client.scatter([own for own, _ in chunks], hash=False)
        grid = None
        if rule.kind == "raster":  # the whole DEM to each worker once
            source = rule.params["raster"]["source"]
            [grid] = client.scatter([{source: rasters[source]}], hash=False, broadcast=True)
        futures = [client.submit(_run_partition, rule_run, own, others[i], grid, versions_run, real, pure=False)
                   for i, own in enumerate(owns)]
        results = _gather(client, futures, progress)
    finally:
        client.cancel(futures)
    found = [r.patches for r in results if not r.patches.empty]
    patches = (gpd.GeoDataFrame(pd.concat(found, ignore_index=True), geometry=found[0].geometry.name,
                                crs=STORAGE_CRS) if found else results[0].patches)
    return Detection(rule, patches, sum(r.suppressed_count for r in results),
                     float(sum(r.suppressed_area_m2 for r in results)), [u for r in results for u in r.unknown])


def _side_rows(frames: dict[str, gpd.GeoDataFrame], side: RuleSide) -> dict[str, gpd.GeoDataFrame]:
    """The features of each layer of ``side`` that its class filter picks (layers without a version left out)."""
    return {lid: select(frames[lid], side.where) for lid in side.layers if lid in frames}


def _hilbert_chunks(rows: dict[str, gpd.GeoDataFrame], n: int) -> list[tuple[dict[str, gpd.GeoDataFrame], np.ndarray]]:
    """``rows`` cut into ``n`` partitions of (nearly) equal size along the Hilbert curve of their bounds'
    centres: each partition's features per layer (in their own order) and its geometries."""
    layers = list(rows)
    geoms = np.concatenate([np.asarray(rows[lid].geometry.values, dtype=object) for lid in layers])
    owner = np.repeat(np.arange(len(layers)), [len(rows[lid]) for lid in layers])
    position = np.concatenate([np.arange(len(rows[lid])) for lid in layers])
    distance = gpd.GeoSeries(geoms, crs=STORAGE_CRS).hilbert_distance().to_numpy()
    out = []
    for chunk in np.array_split(np.argsort(distance, kind="stable"), n):
        own = {lid: rows[lid].iloc[np.sort(position[chunk][owner[chunk] == j])] for j, lid in enumerate(layers)}
        out.append((own, geoms[chunk]))
    return out


def _near(rows: dict[str, gpd.GeoDataFrame], trees: dict[str, shapely.STRtree],
          geoms: np.ndarray) -> dict[str, gpd.GeoDataFrame]:
    """The features of ``rows`` (indexed by ``trees``) whose bounds meet the bounds of one of ``geoms``,
    each layer in its own order."""
    return {lid: frame.iloc[np.unique(trees[lid].query(geoms)[1])] for lid, frame in rows.items()}


def _run_partition(rule: RuleSpec, own: dict[str, gpd.GeoDataFrame], other: dict[str, gpd.GeoDataFrame],
                   rasters: dict[str, Raster] | None, versions: dict[str, int], real: dict[str, str]) -> Detection:
    """On a worker: the local engine on one partition; layers renamed for the run get their own names back."""
    found = detect(rule, {**other, **own}, versions, rasters)
    if real:
        for column in ("layer_a", "layer_b"):
            found.patches[column] = [real.get(v, v) for v in found.patches[column]]
        found.unknown = [{k: real.get(v, v) if k in ("layer_a", "layer_b") else v for k, v in u.items()}
                         for u in found.unknown]
    return found


def _gather(client: Client, futures: list[Any], progress: Progress | None) -> list[Detection]:
    """The partitions' results in partition order, reporting each as it finishes; the first error is raised."""
    from distributed import as_completed

    for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
        if future.status == "error":
            future.result()  # raises the worker's exception
        if progress:
            progress(done, len(futures))
    return client.gather(futures)
