"""Where detection runs: in this process ("local"), or on a Dask cluster ("dask").

The Dask engine cuts side A of each rule into spatial partitions (dask-geopandas, Hilbert order), sends
each partition with the whole of side B to a worker, and merges the partial detections. Each patch
depends on one A feature and one B feature only, so the merged result equals the local one.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from multiplan.conflicts import Detection, detect
from multiplan.crs import STORAGE_CRS
from multiplan.io import Raster
from multiplan.rules import RuleSpec


def _merge(rule: RuleSpec, parts: list[Detection]) -> Detection:
    frames = [p.patches for p in parts if not p.patches.empty]
    patches = (gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=STORAGE_CRS) if frames
               else parts[0].patches if parts else gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=STORAGE_CRS)))
    merged = Detection(rule, patches, sum(p.suppressed_count for p in parts), sum(p.suppressed_area_m2 for p in parts))
    merged.unknown = [u for p in parts for u in p.unknown]
    return merged


class DaskEngine:
    """Run rules on a dask.distributed cluster: a LocalCluster, or a scheduler at ``address``."""

    def __init__(self, address: str | None = None, partitions: int = 8, workers: int = 2) -> None:
        from dask.distributed import Client, LocalCluster

        self.partitions = partitions
        self._cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                          dashboard_address=None, processes=True)
        self.client = Client(address or self._cluster)

    def detect(self, rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int],
               rasters: dict[str, Raster] | None = None) -> Detection:
        import dask
        import dask_geopandas

        a_layers = [lid for lid in rule.a.layers if lid in frames and not frames[lid].empty]
        if rule.kind not in ("overlap", "corridor", "raster") or not a_layers:
            return detect(rule, frames, versions, rasters)  # containment needs all of B at once anyway
        others = {lid: f for lid, f in frames.items() if lid not in a_layers}
        shared = self.client.scatter([others, versions, rasters or {}], broadcast=True)
        futures = []
        for lid in a_layers:
            frame = frames[lid]
            n = max(1, min(self.partitions, len(frame)))
            # keep object columns as they are (attribute dicts must not become strings)
            with dask.config.set({"dataframe.convert-string": False}):
                spatial = dask_geopandas.from_geopandas(frame, npartitions=n).spatial_shuffle(by="hilbert")
                delayed = spatial.to_delayed()
            for part in self.client.compute(delayed):
                futures.append(self.client.submit(_detect_part, rule, lid, part, *shared))
        return _merge(rule, self.client.gather(futures))

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _detect_part(rule: RuleSpec, layer: str, part: gpd.GeoDataFrame, others: dict[str, gpd.GeoDataFrame],
                 versions: dict[str, int], rasters: dict[str, Raster]) -> Detection:
    """One spatial partition of one A layer against everything else."""
    frames = {**others, layer: part.reset_index(drop=True)}
    only_this = RuleSpec(**{**rule.__dict__, "a": type(rule.a)((layer,), rule.a.where)})
    return detect(only_this, frames, versions, rasters)
