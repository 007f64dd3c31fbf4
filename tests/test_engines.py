"""The Dask engine gives the same conflicts as the local one (LocalCluster, spatial partitions)."""

from __future__ import annotations

import pytest

from multiplan.cli.demo import SAMPLE_DIR
from multiplan.detection import run_detection

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::UserWarning")


def test_dask_detection_equals_local_detection(demo_store):
    from multiplan.engines import DaskEngine

    rules = ["farmland", "network_farmland", "slope", "urban_boundary"]  # overlap, corridor, raster, containment
    rasters = {"dem": SAMPLE_DIR / "dem.tif"}
    local = run_detection(demo_store, rule_ids=rules, rasters=rasters)
    engine = DaskEngine(partitions=4, workers=2)
    try:
        remote = run_detection(demo_store, rule_ids=rules, rasters=rasters, engine=engine)
    finally:
        engine.close()
    assert remote["engine"] == "DaskEngine"
    key = ["rule", "feature_a", "feature_b"]
    a = local["patches"].sort_values(key).reset_index(drop=True)
    b = remote["patches"].sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    assert (abs(a["area_m2"] - b["area_m2"]) <= 1e-9 * a["area_m2"]).all()
    for x, y in zip(local["rules"], remote["rules"], strict=True):
        assert (x["rule"], x["patches"], x["suppressed"]["count"]) == (y["rule"], y["patches"], y["suppressed"]["count"])
        assert x["area_m2"] == pytest.approx(y["area_m2"], rel=1e-9)
