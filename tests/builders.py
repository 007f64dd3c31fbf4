"""Plan files as they arrive from bureaus, built in code for tests."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

COUNTY = (110.20, 19.50, 110.30, 19.60)  # lon/lat box of the test county


def grid_cells(n: int = 4, bounds: tuple[float, float, float, float] = COUNTY) -> list[shapely.Polygon]:
    """An n x n coverage of rectangles over ``bounds`` (edges densified so areas are exact to 1e-9)."""
    x0, y0, x1, y1 = bounds
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    cells = [shapely.box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy)
             for j in range(n) for i in range(n)]
    return list(shapely.segmentize(np.array(cells), dx / 20))


def land_use_frame(n: int = 4, codes: list[str] | None = None) -> gpd.GeoDataFrame:
    cells = grid_cells(n)
    codes = codes or [("010", "030", "090", "020")[i % 4] for i in range(len(cells))]
    return gpd.GeoDataFrame({
        "BSM": [f"LU{i:04d}" for i in range(len(cells))],
        "YTQLXDM": codes,
        "GZQLXDM": ["010"] * len(cells),
        "XZQDM": ["469099"] * len(cells),
        "备注": ["土地利用规划 测试"] * len(cells),
    }, geometry=cells, crs=4490)


def write_shapefile(frame: gpd.GeoDataFrame, folder: Path, name: str, *, epsg: int | None = 4490,
                    encoding: str = "GBK", cpg: str | None = None, prj: str | bool = True) -> Path:
    """Write a shapefile set the way bureaus deliver it: no .cpg by default, .prj optional or replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    data = frame.to_crs(epsg) if epsg and frame.crs is not None else frame
    shp = folder / f"{name}.shp"
    data.to_file(shp, encoding=encoding, engine="pyogrio")
    cpg_path = shp.with_suffix(".cpg")
    if cpg is None:
        cpg_path.unlink(missing_ok=True)
    else:
        cpg_path.write_text(cpg)
    prj_path = shp.with_suffix(".prj")
    if prj is False:
        prj_path.unlink(missing_ok=True)
    elif isinstance(prj, str):
        prj_path.write_text(prj)
    return shp


def zip_shapefile(shp: Path, zip_path: Path, subfolder: str = "", name_in_zip: str | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(shp.parent.glob(shp.stem + ".*")):
            arc = (name_in_zip or shp.stem) + part.suffix
            zf.write(part, f"{subfolder}/{arc}" if subfolder else arc)
    return zip_path


def set_dbf_record_count(dbf: Path, count: int) -> None:
    """Rewrite the record count in a .dbf header (and cut the records to match)."""
    raw = bytearray(dbf.read_bytes())
    _, hlen, rlen = struct.unpack("<IHH", raw[4:12])
    raw[4:8] = struct.pack("<I", count)
    dbf.write_bytes(bytes(raw[: hlen + count * rlen]) + b"\x1a")


def flag_dbf_deleted(dbf: Path, record_numbers: list[int]) -> None:
    """Flag 1-based records as deleted ('*'), as dBASE tools do."""
    raw = bytearray(dbf.read_bytes())
    _, hlen, rlen = struct.unpack("<IHH", raw[4:12])
    for n in record_numbers:
        raw[hlen + (n - 1) * rlen] = ord("*")
    dbf.write_bytes(bytes(raw))


def remove(path: Path) -> None:
    os.remove(path)
