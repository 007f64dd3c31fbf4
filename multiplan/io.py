"""The only code that opens plan files: find the dataset, its encoding and CRS, read it in chunks."""

from __future__ import annotations

import hashlib
import shutil
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charset_normalizer
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import pyogrio.raw
import pyproj
import shapely

from multiplan.archive import safe_extract
from multiplan.config import ArchiveLimits
from multiplan.crs import CRSChoice, detect_crs, flat_wkb, parse_prj_text
from multiplan.errors import CRSError, InputError

_DATASET_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json")
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf")

# .cpg spellings seen in the wild -> Python codec names
_CPG_ALIASES = {"936": "gbk", "cp936": "gbk", "gb2312": "gbk", "gbk": "gbk", "gb18030": "gb18030",
                "utf8": "utf-8", "utf-8": "utf-8", "65001": "utf-8", "big5": "big5", "950": "big5",
                "ansi": "cp1252"}


@dataclass
class PlanSource:
    """One dataset found in what the user gave, with how its encoding and CRS were decided."""

    given: Path                   # the path the user gave (zip, .shp, .gpkg, .geojson)
    dataset: Path                 # the dataset GDAL reads
    driver: str                   # "ESRI Shapefile", "GPKG" or "GeoJSON"
    layer: str | None = None
    encoding: str | None = None
    encoding_source: str = ""     # "cpg", "option", "detected", "format"
    crs: CRSChoice | None = None
    feature_count: int = 0
    geometry_type: str = ""
    fields: list[str] = field(default_factory=list)
    deleted_records: list[int] = field(default_factory=list)  # 1-based .dbf record numbers
    notes: list[str] = field(default_factory=list)           # announcements for the load report
    arrow_read: bool = True       # False once GDAL's Arrow stream proved unsuitable (see _read_arrow)
    fid_range: tuple[str, int] | None = None  # GeoPackage: fid column and first fid, when fids run 1 by 1

    @property
    def name(self) -> str:
        return self.given.name


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(shp: Path, ext: str) -> Path | None:
    for cand in (shp.with_suffix(ext), shp.with_suffix(ext.upper())):
        if cand.exists():
            return cand
    return None


def _find_dataset(folder: Path, archive_name: str) -> Path:
    found = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in _DATASET_SUFFIXES and p.is_file()]
    if not found:
        dbfs = [p for p in folder.rglob("*") if p.suffix.lower() == ".dbf"]
        if dbfs:
            raise InputError("missing_sidecar", file=f"{archive_name}:{dbfs[0].name}", ext=".shp")
        raise InputError("zip_no_dataset", file=archive_name)
    if len(found) > 1:
        raise InputError("zip_many_datasets", file=archive_name,
                         names=", ".join(str(p.relative_to(folder)) for p in found))
    return found[0]


def _dbf_header(dbf: Path) -> tuple[int, int, int, int]:
    """(record count, header length, record length, language driver id) of a .dbf."""
    with open(dbf, "rb") as fh:
        head = fh.read(32)
    if len(head) < 32:
        raise InputError("read_failed", file=dbf.name, detail="the .dbf header is truncated")
    nrec, hlen, rlen = struct.unpack("<IHH", head[4:12])
    return nrec, hlen, rlen, head[29]


def _shape_count(shx: Path) -> int:
    return max(0, (shx.stat().st_size - 100) // 8)


def _deleted_records(dbf: Path, nrec: int, hlen: int, rlen: int) -> list[int]:
    if nrec == 0 or rlen == 0:
        return []
    data = np.memmap(dbf, dtype=np.uint8, mode="r")
    flags = data[hlen: hlen + nrec * rlen: rlen]
    return (np.flatnonzero(flags == ord("*")) + 1).tolist()


def _dbf_text_sample(dbf: Path, hlen: int, rlen: int, nrec: int, limit: int = 2_000_000) -> bytes:
    with open(dbf, "rb") as fh:
        fh.seek(hlen)
        return fh.read(min(nrec * rlen, limit))


def detect_text_encoding(raw: bytes) -> str | None:
    """UTF-8 if the bytes decode as UTF-8, else GBK (GB18030) if they do, else charset-normalizer's guess.

    ASCII-only text returns "utf-8": every reading agrees.
    """
    for codec, name in (("utf-8", "utf-8"), ("gb18030", "gbk")):
        try:
            raw.decode(codec)
            return name
        except UnicodeDecodeError:
            pass
    best = charset_normalizer.from_bytes(raw).best()
    return best.encoding if best is not None else None


def _cpg_encoding(text: str) -> str | None:
    value = text.strip().lstrip("\ufeff").lower()
    if not value or "<" in value[:200] or len(value) > 40:
        return None
    value = value.replace("ansi ", "").replace("windows-", "").replace("cp", "").strip() or "ansi"
    name = _CPG_ALIASES.get(value) or _CPG_ALIASES.get("cp" + value)
    if name is None and value.isdigit():
        name = f"cp{value}"
    if name is None:
        name = value
    try:
        "".encode(name)
    except LookupError:
        return None
    return name


def _read_text(path: Path) -> str:
    return path.read_bytes()[:100_000].decode("utf-8", errors="replace")


def _prepare_shapefile(src: PlanSource, workdir: Path, encoding: str | None) -> None:
    shp = src.dataset
    dbf = _sidecar(shp, ".dbf")
    if dbf is None:
        raise InputError("missing_sidecar", file=src.name if src.given == shp else f"{src.name}:{shp.name}", ext=".dbf")
    shx = _sidecar(shp, ".shx")
    if shx is None:
        # Restore the index in a private copy so the user's folder is never written to.
        copy_dir = workdir / "shx"
        copy_dir.mkdir(exist_ok=True)
        for part in shp.parent.glob(shp.stem + ".*"):
            shutil.copy2(part, copy_dir / part.name)
        shp = src.dataset = copy_dir / shp.name
        dbf = _sidecar(shp, ".dbf")
        pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pyogrio.read_info(shp)
        finally:
            pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": None})
        shx = _sidecar(shp, ".shx")
        if shx is None:
            raise InputError("missing_sidecar", file=src.name, ext=".shx")
        src.notes.append("index_restored")
    assert dbf is not None
    nrec, hlen, rlen, _ldid = _dbf_header(dbf)
    shapes = _shape_count(shx)
    if nrec < shapes or (nrec > shapes and shapes > 0):
        raise InputError("dbf_short", file=src.name, records=nrec, shapes=shapes)
    src.deleted_records = _deleted_records(dbf, nrec, hlen, rlen)
    if encoding:
        src.encoding, src.encoding_source = encoding, "option"
        return
    cpg = _sidecar(shp, ".cpg")
    if cpg is not None:
        from_cpg = _cpg_encoding(_read_text(cpg))
        if from_cpg:
            src.encoding, src.encoding_source = from_cpg, "cpg"
            return
        src.notes.append("cpg_unusable")
    detected = detect_text_encoding(_dbf_text_sample(dbf, hlen, rlen, nrec))
    if detected is None:
        raise InputError("bad_encoding", file=src.name, encoding="UTF-8/GBK",
                         detail="the attribute text is neither UTF-8 nor GBK")
    src.encoding, src.encoding_source = detected, "detected"


def _file_crs(src: PlanSource, info_crs: str | None) -> pyproj.CRS | None:
    if src.driver == "ESRI Shapefile":
        prj = _sidecar(src.dataset, ".prj")
        if prj is None:
            src.notes.append("prj_missing")
            return None
        crs = parse_prj_text(_read_text(prj))
        if crs is None:
            src.notes.append("prj_unusable")
        return crs
    return pyproj.CRS.from_user_input(info_crs) if info_crs else None


def open_plan_source(path: str | Path, workdir: Path, *, source_layer: str | None = None,
                     encoding: str | None = None, crs: pyproj.CRS | None = None,
                     limits: ArchiveLimits | None = None) -> PlanSource:
    """Find and inspect the dataset in ``path``; unpack archives into ``workdir``.

    Raises :class:`InputError` (or a subclass) naming the file when it cannot be read as a plan.
    """
    given = Path(path)
    if not given.exists():
        raise InputError("file_not_found", file=str(given))
    if given.is_file() and given.stat().st_size == 0:
        raise InputError("file_empty", file=given.name)
    suffix = given.suffix.lower()
    if suffix == ".zip":
        unpack = workdir / "unzipped"
        unpack.mkdir()
        safe_extract(given, unpack, limits or ArchiveLimits())
        dataset = _find_dataset(unpack, given.name)
    elif suffix in _DATASET_SUFFIXES:
        dataset = given
    elif suffix in (".dbf", ".shx"):
        if _sidecar(given, ".shp") is None:
            raise InputError("missing_sidecar", file=given.name, ext=".shp")
        dataset = _sidecar(given, ".shp")
    else:
        raise InputError("unsupported_format", file=given.name)
    assert dataset is not None
    ds_suffix = dataset.suffix.lower()
    driver = {".shp": "ESRI Shapefile", ".gpkg": "GPKG"}.get(ds_suffix, "GeoJSON")
    src = PlanSource(given=given, dataset=dataset, driver=driver)
    if driver == "ESRI Shapefile":
        _prepare_shapefile(src, workdir, encoding)
    else:
        src.encoding, src.encoding_source = (encoding, "option") if encoding else ("utf-8", "format")
    if driver == "GPKG":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # GDAL's notes on M values come again with read_info
                names = [str(n) for n in pyogrio.list_layers(src.dataset)[:, 0]]
        except Exception as exc:  # GDAL raises several types for a broken file
            raise InputError("read_failed", file=src.name, detail=str(exc)) from exc
        if source_layer is None:
            if len(names) != 1:
                raise InputError("gpkg_layer_choice", file=src.name, names=", ".join(names))
            source_layer = names[0]
        elif source_layer not in names:
            raise InputError("gpkg_layer_missing", file=src.name, name=source_layer, names=", ".join(names))
        src.layer = source_layer
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = pyogrio.read_info(src.dataset, layer=src.layer, encoding=src.encoding
                                     if driver == "ESRI Shapefile" else None, force_feature_count=True)
    except Exception as exc:
        raise InputError("read_failed", file=src.name, detail=str(exc).splitlines()[0]) from exc
    src.notes.extend(_gdal_notes(caught))
    src.feature_count = int(info["features"])
    src.geometry_type = str(info["geometry_type"])
    src.fields = [str(f) for f in info["fields"]]
    if driver == "GPKG" and info.get("fid_column"):
        src.fid_range = _contiguous_fids(src, str(info["fid_column"]))
    if src.feature_count == 0:
        raise InputError("no_features", file=src.name)
    if crs is not None:
        src.crs = CRSChoice(crs, "option")
    else:
        file_crs = _file_crs(src, info["crs"])
        if file_crs is not None:
            src.crs = CRSChoice(file_crs, "prj" if driver == "ESRI Shapefile" else "file")
        elif driver == "GeoJSON":
            src.crs = CRSChoice(pyproj.CRS.from_epsg(4490), "format", "GeoJSON coordinates are lon/lat")
        else:
            bounds = tuple(float(b) for b in info["total_bounds"])
            choice = detect_crs(bounds)  # type: ignore[arg-type]
            if choice is None:
                raise CRSError("crs_unknown", file=src.name,
                               detail=f"no usable .prj, and the coordinates {_fmt_bounds(bounds)} match no CGCS2000 zone")
            src.crs = choice
    return src


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _contiguous_fids(src: PlanSource, fid_column: str) -> tuple[str, int] | None:
    """A GeoPackage's fid column and first fid when its fids run without a gap: a chunk is then read by
    a fid range, which SQLite finds at once (skipping to a chunk steps through every row before it)."""
    try:
        bounds = []
        column, table = _quoted(fid_column), _quoted(src.layer or "")
        for fn in ("MIN", "MAX"):  # one each: SQLite answers a lone MIN or MAX from the b-tree's end
            _, _, _, values = pyogrio.raw.read(src.dataset, read_geometry=False,
                                               sql=f"SELECT {fn}({column}) AS v FROM {table}")
            bounds.append(int(values[0][0]))
    except Exception:  # any doubt: skip to chunks instead
        return None
    first, last = bounds
    return (fid_column, first) if last - first + 1 == src.feature_count else None


def _chunk_filter(src: PlanSource, start: int, count: int) -> dict[str, Any]:
    """The read arguments for features ``start`` to ``start + count`` in read order."""
    if src.fid_range is None:
        return {"skip_features": start, "max_features": count}
    column, first = src.fid_range
    return {"where": f"{_quoted(column)} >= {first + start} AND {_quoted(column)} < {first + start + count}"}


def _fmt_bounds(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"


def _gdal_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    notes = []
    for w in caught:
        text = str(w.message).splitlines()[0]
        if "Measured (M)" in text:
            notes.append("m_dropped")
        elif "Non closed ring" in text:
            notes.append("unclosed_ring")
        else:
            notes.append(f"gdal: {text}")
    return sorted(set(notes), key=notes.index)


@dataclass
class RawChunk:
    """Features as read: 1-based feature numbers, geometries (None where unreadable), attributes.

    A chunk read through Arrow comes with its WKB in one buffer and no geometries yet: :meth:`decode`
    makes them when they are needed (the loader's common case does without).
    """

    start: int                     # position of the first feature in read order
    fids: np.ndarray               # the dataset's own feature ids, to read features again
    feature_no: np.ndarray
    geometry: np.ndarray | None
    attributes: pd.DataFrame
    unreadable: list[int]          # feature numbers whose geometry type shapely cannot hold
    unclosed: list[int]            # feature numbers whose rings had to be closed
    wkb: np.ndarray | None         # each geometry's WKB (as read, or as closed)
    wkb_arrow: pa.Array | None = None  # the WKB as read, in one buffer, when read through Arrow

    def decode(self) -> None:
        """Make the geometries (and the WKB array), if the read left them undone."""
        if self.wkb is None:
            assert self.wkb_arrow is not None
            self.wkb = self.wkb_arrow.to_numpy(zero_copy_only=False)
        if self.geometry is None:
            self.geometry, self.unreadable, self.unclosed = _decode_wkb(self.wkb, self.feature_no)
            if self.unclosed:  # closed now: the buffer as read is no longer what is loaded
                self.wkb_arrow = None


def _decode_wkb(wkb: np.ndarray, feature_no: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    geoms = np.empty(len(wkb), dtype=object)
    unreadable: list[int] = []
    unclosed: list[int] = []
    try:
        geoms[:] = shapely.from_wkb(wkb, on_invalid="raise")
        return geoms, unreadable, unclosed
    except shapely.errors.GEOSException:
        pass
    for i, blob in enumerate(wkb):
        if blob is None:
            geoms[i] = None
            continue
        try:
            geoms[i] = shapely.from_wkb(blob, on_invalid="raise")
        except shapely.errors.GEOSException as exc:
            fixed = shapely.from_wkb(blob, on_invalid="fix") if "closed" in str(exc) else None
            if fixed is not None:
                geoms[i] = fixed
                wkb[i] = shapely.to_wkb(fixed)
                unclosed.append(int(feature_no[i]))
            else:
                geoms[i] = None
                unreadable.append(int(feature_no[i]))
    return geoms, unreadable, unclosed


def _read(src: PlanSource, **kwargs: Any) -> tuple[dict, np.ndarray, np.ndarray, list]:
    enc = src.encoding if src.driver == "ESRI Shapefile" else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, fids, wkb, values = pyogrio.raw.read(src.dataset, layer=src.layer, encoding=enc, force_2d=True,
                                                       return_fids=True, **kwargs)
    except UnicodeDecodeError as exc:
        raise InputError("bad_encoding", file=src.name, encoding=src.encoding, detail=str(exc)) from exc
    except Exception as exc:
        raise InputError("read_failed", file=src.name, detail=str(exc).splitlines()[0]) from exc
    for note in _gdal_notes(caught):
        if note not in src.notes:
            src.notes.append(note)
    return meta, np.asarray(fids, dtype=np.int64), wkb, values


def _chunk(src: PlanSource, start: int, meta: dict, fids: np.ndarray, wkb: np.ndarray, values: list,
           feature_no: np.ndarray) -> RawChunk:
    geoms, unreadable, unclosed = _decode_wkb(wkb, feature_no)
    attrs = pd.DataFrame({str(name): col for name, col in zip(meta["fields"], values, strict=True)})
    return RawChunk(start, fids, feature_no, geoms, attrs, unreadable, unclosed, wkb)


# Field types the Arrow read gives exactly as the plain read does.
_ARROW_FIELD_TYPES = {"OFTString", "OFTInteger", "OFTInteger64", "OFTReal"}


def _read_arrow(src: PlanSource, start: int, **kwargs: Any) -> RawChunk | None:
    """The same features through GDAL's Arrow stream, some three times faster (attributes stay columns,
    not Python objects); None where the plain read must decide: any GDAL message while reading (text
    in the wrong encoding, unclosed rings, M values), field types beyond text and numbers, geometries
    that are not plain 2-D polygons (the plain read linearises curves). Polygon plans only."""
    if not src.arrow_read or src.geometry_type not in ("Polygon", "MultiPolygon"):
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, table = pyogrio.raw.read_arrow(src.dataset, layer=src.layer, return_fids=True,
                                                 encoding=src.encoding if src.driver == "ESRI Shapefile" else None,
                                                 **kwargs)
    except Exception:  # the plain read gives the error its proper message
        return None
    if table.num_rows == 0:
        return None
    if caught or set(meta["ogr_types"]) - _ARROW_FIELD_TYPES or set(meta["ogr_subtypes"]) - {"OFSTNone"}:
        src.arrow_read = False
        return None
    fid_name, geom_name = meta["fid_column"] or "OGC_FID", meta["geometry_name"] or "wkb_geometry"
    fids = table.column(fid_name).to_numpy().astype(np.int64)
    try:
        packed = table.column(geom_name).combine_chunks()
    except pa.ArrowInvalid:  # more than 2 GB of WKB in one chunk: 32-bit offsets cannot hold it
        return None
    if not _plain_polygons(packed):
        src.arrow_read = False
        return None
    attrs = table.drop_columns([fid_name, geom_name]).to_pandas()
    if list(attrs.columns) != [str(f) for f in meta["fields"]]:
        src.arrow_read = False
        return None
    numbers = _feature_numbers(src, fids, np.arange(start, start + len(fids)))
    return RawChunk(start, fids, numbers, None, attrs, [], [], None, packed)


def _plain_polygons(packed: pa.Array) -> bool:
    """Whether every WKB in ``packed`` (Arrow binary) is a little-endian 2-D Polygon or MultiPolygon, by
    its header (the parts of a MultiPolygon are Polygons of the same dimension); nulls pass."""
    raw, off = flat_wkb(packed)
    present = np.diff(off) > 0
    at = off[:-1][present]
    if (off[1:][present] - at < 9).any() or (raw[at] != 1).any():
        return False
    kind = raw[at + 1].astype(np.int64) | raw[at + 2].astype(np.int64) << 8 | raw[at + 3].astype(np.int64) << 16 \
        | raw[at + 4].astype(np.int64) << 24
    return bool(np.isin(kind, (3, 6)).all())


def _feature_numbers(src: PlanSource, fids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    # shapefile fids are 0-based record numbers (as GIS tools show them + 1); else the read order
    return fids + 1 if src.driver == "ESRI Shapefile" else positions + 1


def read_chunk(src: PlanSource, start: int, count: int, lazy: bool = False) -> RawChunk | None:
    """Features ``start`` to ``start + count`` in read order (None past the end), 2-D, curves linearised.

    Read order skips the records a .dbf flags deleted, so it can end before ``src.feature_count``.
    ``lazy``: a chunk read through Arrow comes without geometries (see :meth:`RawChunk.decode`).
    """
    which = _chunk_filter(src, start, count)
    fast = _read_arrow(src, start, **which)
    if fast is not None:
        if not lazy:
            fast.decode()
        return fast
    meta, fids, wkb, values = _read(src, **which)
    if len(wkb) == 0:
        return None
    numbers = _feature_numbers(src, fids, np.arange(start, start + len(wkb)))
    return _chunk(src, start, meta, fids, wkb, values, numbers)


def read_chunks(src: PlanSource, chunk_size: int = 50_000) -> Iterator[RawChunk]:
    """Read the dataset in chunks of ``chunk_size`` features."""
    start = 0
    while (chunk := read_chunk(src, start, chunk_size)) is not None:
        yield chunk
        start += len(chunk.feature_no)
        if len(chunk.feature_no) < chunk_size:
            break


def read_again(src: PlanSource, fids: np.ndarray, positions: np.ndarray) -> RawChunk:
    """Read the features with these dataset ``fids`` (found earlier at read ``positions``) once more."""
    order = np.argsort(fids)
    meta, got, wkb, values = _read(src, fids=fids[order])
    if not np.array_equal(got, fids[order]):
        raise InputError("read_failed", file=src.name, detail="features changed while being read")
    numbers = _feature_numbers(src, got, positions[order])
    return _chunk(src, -1, meta, got, wkb, values, numbers)


@dataclass
class Raster:
    """One band of a raster file with its grid."""

    values: np.ndarray   # float64, NaN where there is no data
    transform: Any       # affine.Affine
    crs: pyproj.CRS


def read_raster(path: str | Path) -> Raster:
    """The first band of a GeoTIFF (or any GDAL raster) as floats, no-data as NaN."""
    import rasterio

    path = Path(path)
    if not path.exists():
        raise InputError("file_not_found", file=str(path))
    try:
        with rasterio.open(path) as src:
            band = src.read(1, masked=True).astype("float64")
            return Raster(band.filled(np.nan), src.transform, pyproj.CRS.from_user_input(src.crs.to_wkt()))
    except rasterio.errors.RasterioError as exc:
        raise InputError("read_failed", file=path.name, detail=str(exc)) from exc


def write_patches(patches: Any, path: str | Path) -> Path:
    """Write conflict patches to GeoPackage, GeoJSON or CSV (geometry as WKT), chosen by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.DataFrame(patches.drop(columns=patches.geometry.name))
        table["wkt"] = shapely.to_wkt(patches.geometry.values, rounding_precision=9)
        table.to_csv(path, index=False, encoding="utf-8-sig")
    elif suffix in (".gpkg", ".geojson", ".json"):
        driver = "GPKG" if suffix == ".gpkg" else "GeoJSON"
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(patches, path, layer="conflicts" if driver == "GPKG" else None, driver=driver)
    else:
        raise InputError("unsupported_format", file=path.name)
    return path
