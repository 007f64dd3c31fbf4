"""The embedded default store: one GeoPackage file that QGIS opens.

Plan layers are GeoPackage feature tables written through pyogrio; metadata (versions, audit trail,
schema migrations) live in ordinary attribute tables of the same file. A load is staged in a
private GeoPackage and published in one SQLite transaction, so a failed or killed load leaves the
store as it was.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import pyogrio.raw
import shapely

from multiplan.errors import StorageError
from multiplan.specs import LAYER_IDS, load_layer_specs
from multiplan.store.base import (
    APPEND_ONLY,
    CASE_COLUMNS,
    EVENT_COLUMNS,
    EWKB_COLUMN,
    FEATURE_COLUMNS,
    GEOMETRY_TYPES,
    PATCH_STORE_COLUMNS,
    RECORD_INDEXES,
    RECORD_KEYS,
    RECORD_MIGRATIONS,
    RECORD_TABLES,
    VERSION_STAMP_SQL,
    AuditEntry,
    FeatureArrays,
    LedgerTransaction,
    LoadMeta,
    LoadSession,
    PlanStore,
    PlanVersion,
    RecordTransaction,
    audit_detail,
    audit_from_row,
    change_stamp_sql,
    check_bounds_grouping,
    check_lookup_column,
    check_schema_version,
    checked_columns,
    feature_table,
    normalise_read_frame,
    now_utc,
    version_from_row,
    version_record,
)

BUSY_TIMEOUT_S = 600
#: Plan versions held in memory for site checks (12 layers, and room for as-of checks against older ones).
_VERSION_CACHE_SIZE = 36
_VERSION_CACHE: dict[tuple, tuple[FeatureArrays, shapely.STRtree]] = {}
PATCH_TABLE = "conflict_patches"
_STAGE = "stage"
_BBOX = ("_minx", "_maxx", "_miny", "_maxy")
# Page cache (KiB) of the connection that publishes a load: the rtree's and the table's pages stay in memory
# while a large version goes in (SQLite's default is 2 MB).
PUBLISH_CACHE_KIB = 256 * 1024

_META_TABLES = {
    "mp_schema_migrations": """CREATE TABLE mp_schema_migrations (
        id INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)""",
    "mp_plan_versions": """CREATE TABLE mp_plan_versions (
        layer TEXT NOT NULL, version INTEGER NOT NULL, label TEXT, source_name TEXT NOT NULL,
        source_sha256 TEXT NOT NULL, loaded_at TEXT NOT NULL, loaded_by TEXT NOT NULL,
        status TEXT NOT NULL, n_read INTEGER NOT NULL, n_loaded INTEGER NOT NULL,
        n_rejected INTEGER NOT NULL, crs TEXT NOT NULL, crs_guessed INTEGER NOT NULL,
        encoding TEXT NOT NULL, encoding_guessed INTEGER NOT NULL, report_json TEXT NOT NULL,
        PRIMARY KEY (layer, version))""",
    "mp_detection_runs": """CREATE TABLE mp_detection_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, versions TEXT NOT NULL,
        rule_set_sha256 TEXT NOT NULL, summary TEXT NOT NULL)""",
    "mp_conflicts": """CREATE TABLE mp_conflicts (
        conflict_id TEXT PRIMARY KEY, rule TEXT NOT NULL, severity TEXT NOT NULL, layer_a TEXT NOT NULL,
        version_a INTEGER, feature_a TEXT, layer_b TEXT, version_b INTEGER, feature_b TEXT, xzqdm TEXT,
        status TEXT NOT NULL, area_m2 REAL, give_way TEXT, suggestion_zh TEXT, suggestion_en TEXT,
        first_run INTEGER NOT NULL, last_run INTEGER NOT NULL, updated_at TEXT NOT NULL)""",
    "mp_conflict_events": """CREATE TABLE mp_conflict_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, conflict_id TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL,
        kind TEXT NOT NULL, from_status TEXT, to_status TEXT, run_id INTEGER, author TEXT, text TEXT)""",
    "mp_audit_log": """CREATE TABLE mp_audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, layer TEXT, version INTEGER, detail TEXT NOT NULL)""",
}


def _immutable_triggers(table: str, what: str) -> list[str]:
    return [f"""CREATE TRIGGER IF NOT EXISTS "{table}_no_{op.lower()}" BEFORE {op} ON "{table}"
                BEGIN SELECT RAISE(ABORT, '{table} is {what}'); END""" for op in ("UPDATE", "DELETE")]


def _empty_layer_frame(geometry: str) -> gpd.GeoDataFrame:
    dtypes = {"INTEGER": "int32", "REAL": "float64", "TEXT": "str"}
    cols = {name: pd.Series([], dtype=dtypes[sqlite_type]) for name, _pg, sqlite_type in FEATURE_COLUMNS}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=4490))


class GpkgStore(PlanStore):
    """A :class:`PlanStore` in one GeoPackage file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self._ready_inode: int | None = None
        self._readers = threading.local()

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError("store_unreachable", store=self.url, detail=str(exc)) from exc
        con.row_factory = sqlite3.Row
        return con

    def _require_init(self) -> None:
        try:
            identity = self.path.stat().st_ino
        except OSError:
            raise StorageError("store_not_initialised", store=self.url) from None
        if identity == self._ready_inode:  # checked once per file: a schema does not go away under us
            return
        con = self._connect()
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE name='mp_plan_versions'").fetchone()
            schema = con.execute("SELECT MAX(id) FROM mp_schema_migrations").fetchone()[0] if found else None
        finally:
            con.close()
        if not found:
            raise StorageError("store_not_initialised", store=self.url)
        check_schema_version(self.url, schema, len(_migrations()))
        self._ready_inode = identity

    # -- schema ----------------------------------------------------------------------------
    def init(self) -> list[str]:
        """Create the file, the twelve plan layers and the metadata tables; apply migrations."""
        specs = load_layer_specs()
        existing = set()
        if self.path.exists():
            try:
                existing = {str(n) for n in pyogrio.list_layers(self.path)[:, 0]}
            except Exception as exc:
                raise StorageError("store_unreachable", store=self.url, detail=str(exc)) from exc
        if PATCH_TABLE not in existing:
            pyogrio.write_dataframe(_empty_patch_frame(), self.path, layer=PATCH_TABLE, driver="GPKG",
                                    geometry_type="MultiPolygon", append=self.path.exists(),
                                    layer_options={"DESCRIPTION": "冲突图斑 conflict patches"})
        for layer_id in LAYER_IDS:
            table = feature_table(layer_id)
            if table not in existing:
                pyogrio.write_dataframe(
                    _empty_layer_frame(specs[layer_id].geometry), self.path, layer=table, driver="GPKG",
                    geometry_type=GEOMETRY_TYPES[specs[layer_id].geometry],
                    append=self.path.exists(), layer_options={"DESCRIPTION": specs[layer_id].title_zh})
        applied = []
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            for name, ddl in _META_TABLES.items():
                if not con.execute("SELECT 1 FROM sqlite_master WHERE name=?", (name,)).fetchone():
                    con.execute(ddl)
                    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description)"
                                " VALUES (?, 'attributes', ?, ?)", (name, name, "multiplan metadata"))
            done = {r[0] for r in con.execute("SELECT id FROM mp_schema_migrations")}
            for number, description, statements in _migrations():
                if number in done:
                    continue
                for sql in statements:
                    con.execute(sql)
                con.execute("INSERT INTO mp_schema_migrations VALUES (?, ?, ?)", (number, description, now_utc()))
                applied.append(f"{number}: {description}")
            if applied:
                _audit(con, "init", None, None, {"migrations": applied, "store": self.url})
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return applied

    # -- loads -----------------------------------------------------------------------------
    def begin_load(self, meta: LoadMeta, geometry: str) -> LoadSession:
        self._require_init()
        return _GpkgLoad(self, meta, geometry)

    # -- queries ---------------------------------------------------------------------------
    def _version_rows(self, known: tuple | None) -> tuple[tuple, list[dict[str, Any]] | None]:
        self._require_init()
        con = self._reader()
        stamp = tuple(con.execute(VERSION_STAMP_SQL).fetchone())
        if stamp == known:
            return stamp, None
        return stamp, [dict(r) for r in con.execute("SELECT * FROM mp_plan_versions ORDER BY layer, version")]

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection, kept open: opening one parses the whole schema each time. In
        autocommit mode every query sees what was committed last."""
        identity = self.path.stat().st_ino
        held = getattr(self._readers, "held", None)
        if held is None or held[0] != identity:
            if held is not None:
                held[1].close()
            self._readers.held = held = (identity, self._connect())
        return held[1]

    def close(self) -> None:
        held = getattr(self._readers, "held", None)
        if held is not None:
            held[1].close()
            self._readers.held = None

    def read_features(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None
                      ) -> gpd.GeoDataFrame:
        self.version(layer, version)  # raises NotFoundError for an unknown version
        frame = pyogrio.read_dataframe(self.path, layer=feature_table(layer), where=f"version = {int(version)}",
                                       bbox=bbox, fid_as_index=True)
        return normalise_read_frame(frame.sort_values("feature_no"))

    def features_near(self, versions: dict[str, int], bbox: tuple[float, float, float, float],
                      bboxes: dict[str, tuple[float, float, float, float]] | None = None
                      ) -> dict[str, FeatureArrays]:
        """Served from whole versions held in memory with their STRtrees: versions never change, so a cached
        one is never stale, and an embedded store answers site checks without reading the file each time."""
        known = {(v.layer, v.version): v for v in self._versions_cache or self.versions()}
        bboxes = bboxes or {}
        out = {}
        where = (str(self.path.resolve()), self.path.stat().st_ino)
        for layer, number in versions.items():
            v = known.get((layer, number)) or self.version(layer, number)
            key = (*where, layer, number, v.loaded_at, v.source_sha256)
            if key not in _VERSION_CACHE:
                if len(_VERSION_CACHE) >= _VERSION_CACHE_SIZE:
                    _VERSION_CACHE.pop(next(iter(_VERSION_CACHE)))
                arrays = FeatureArrays.from_frame(self.read_features(layer, number))
                _VERSION_CACHE[key] = (arrays, shapely.STRtree(arrays.geoms))
            arrays, tree = _VERSION_CACHE[key]
            out[layer] = arrays.take(np.sort(tree.query(shapely.box(*bboxes.get(layer, bbox)))))
        return out

    def audit(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        self._require_init()
        with self._transaction(self._connect(), "BEGIN IMMEDIATE") as con:
            _audit(con, action, None, None, detail, actor)

    def audit_log(self, layer: str | None = None) -> list[AuditEntry]:
        self._require_init()
        with self._connect() as con:
            sql = "SELECT * FROM mp_audit_log" + (" WHERE layer=?" if layer else "") + " ORDER BY id"
            return [audit_from_row(dict(r)) for r in con.execute(sql, (layer,) if layer else ())]


    @contextmanager
    def _ledger(self, patches: gpd.GeoDataFrame | None = None) -> Iterator[LedgerTransaction]:
        self._require_init()
        with tempfile.TemporaryDirectory(prefix="multiplan-ledger-") as tmp:
            staged = patches is not None and not patches.empty
            stage_path = Path(tmp) / "stage.gpkg"
            if staged:
                _stage(patches, stage_path, "MultiPolygon", append=False)
            con = self._connect()
            if staged:
                con.execute("ATTACH DATABASE ? AS staging", (str(stage_path),))
            with self._transaction(con, "BEGIN IMMEDIATE"):
                yield _GpkgLedger(con, staged)

    @contextmanager
    def _records(self, write: bool = True) -> Iterator[RecordTransaction]:
        self._require_init()
        with self._transaction(self._connect(), "BEGIN IMMEDIATE" if write else "BEGIN") as con:
            yield _GpkgRecords(con)

    @contextmanager
    def _transaction(self, con: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
        """All or nothing on ``con``, then close it; SQLite errors become "the store is unchanged"."""
        try:
            con.execute(begin)
            yield con
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError("store_write_failed", store=self.url, detail=str(exc)) from exc
            raise
        finally:
            con.close()

    def latest_run_id(self) -> int | None:
        self._require_init()
        found = self._reader().execute("SELECT MAX(id) FROM mp_detection_runs").fetchone()[0]
        return None if found is None else int(found)

    def detection_runs(self) -> list[dict[str, Any]]:
        self._require_init()
        with self._connect() as con:
            return [dict(r) for r in con.execute("SELECT * FROM mp_detection_runs ORDER BY id")]

    def read_patches(self, run_id: int, bbox: tuple[float, float, float, float] | None = None
                     ) -> gpd.GeoDataFrame:
        frame = pyogrio.read_dataframe(self.path, layer=PATCH_TABLE, where=f"run_id = {int(run_id)}",
                                       bbox=None if bbox is None else tuple(map(float, bbox)))
        return frame.reset_index(drop=True)

    def conflicts(self, status: str | None = None, rule: str | None = None, conflict_id: str | None = None
                  ) -> list[dict[str, Any]]:
        self._require_init()
        sql, args = "SELECT * FROM mp_conflicts WHERE 1=1", []
        for col, value in (("status", status), ("rule", rule), ("conflict_id", conflict_id)):
            if value:
                sql += f" AND {col}=?"
                args.append(value)
        with self._connect() as con:
            return [dict(r) for r in con.execute(sql + " ORDER BY rule, conflict_id", args)]

    def conflict_events(self, conflict_id: str) -> list[dict[str, Any]]:
        with self._connect() as con:
            return [dict(r) for r in con.execute("SELECT * FROM mp_conflict_events WHERE conflict_id=? ORDER BY id",
                                                 (conflict_id,))]

    # -- the map (added for the vector tiles and the OGC API): versions and runs served from memory -------
    # Like features_near: a version (or a run's patches) never changes, so the copy held in memory
    # (multiplan.tiles.SOURCES, keyed by file, version and load) is never stale.
    def _file_key(self) -> tuple:
        return ("gpkg", str(self.path.resolve()), self.path.stat().st_ino)

    def _memory_layer(self, layer: str, version: int) -> Any:
        from multiplan import tiles

        v = self.version(layer, version)
        return tiles.SOURCES.get_or_build((*self._file_key(), layer, v.version, v.loaded_at, v.source_sha256),
                                          lambda: tiles.plan_layer(self.read_features(layer, v.version)))

    def mvt_tile(self, layer: str, version: int, z: int, x: int, y: int) -> bytes:
        return self._memory_layer(layer, version).tile(layer, z, x, y)

    def mvt_patch_tile(self, run_id: int, z: int, x: int, y: int) -> bytes:
        from multiplan import tiles

        tiles.check_tile(z, x, y)
        run = next((r for r in self.detection_runs() if r["id"] == int(run_id)), None)
        if run is None:
            return b""
        patches = tiles.SOURCES.get_or_build((*self._file_key(), "patches", run["id"], run["at"]),
                                             lambda: tiles.patch_layer(self.read_patches(run["id"])))
        stamp = self.change_stamp("conflicts")

        def statuses() -> list[str | None]:
            status = {c["conflict_id"]: c["status"] for c in self.conflicts()}
            return [status.get(c) for c in patches.frame["conflict_id"]]
        return patches.tile("conflicts", z, x, y, extra={"status": patches.derived(("status", stamp), statuses)})

    def feature_page(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[gpd.GeoDataFrame, int]:
        return self._memory_layer(layer, version).page(bbox, limit, offset)

    def find_features(self, layer: str, version: int, column: str, value: Any) -> gpd.GeoDataFrame:
        check_lookup_column(column)
        return self._memory_layer(layer, version).where(column, value)

    def feature_bounds(self, layer: str, version: int, by: str | None = None
                       ) -> dict[Any, tuple[float, float, float, float]]:
        check_bounds_grouping(by)
        return self._memory_layer(layer, version).bounds(by)

    def change_stamp(self, what: str) -> tuple:
        sql = change_stamp_sql(what)
        self._require_init()
        return tuple(self._reader().execute(sql).fetchone())


def _audit(con: sqlite3.Connection, action: str, layer: str | None, version: int | None,
           detail: dict[str, Any], actor: str | None = None) -> None:
    from multiplan.store.base import current_actor

    con.execute("INSERT INTO mp_audit_log (at, actor, action, layer, version, detail) VALUES (?,?,?,?,?,?)",
                (now_utc(), actor or current_actor(), action, layer, version,
                 json.dumps(detail, ensure_ascii=False, sort_keys=True)))


def _publish(con: sqlite3.Connection, table: str, columns: list[str], constants: dict[str, Any]) -> None:
    """Copy the staged rows (attached as ``staging``) into feature table ``table``, in the open transaction.

    The rtree trigger GDAL installs calls GDAL's own SQL functions; the index is filled from the staged
    bounds instead, and the trigger put back.
    """
    base = con.execute(f'SELECT COALESCE(MAX(fid), 0) FROM "{table}"').fetchone()[0]
    seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (table,)).fetchone()
    base = max(base, seq[0] if seq else 0)
    trigger_name = f"rtree_{table}_geom_insert"
    trigger_sql = con.execute("SELECT sql FROM sqlite_master WHERE type='trigger' AND name=?",
                              (trigger_name,)).fetchone()[0]
    con.execute(f'DROP TRIGGER "{trigger_name}"')
    names = ", ".join(f'"{c}"' for c in [*constants, *columns])
    values = ", ".join(["?"] * len(constants) + [f'"{c}"' for c in columns])
    con.execute(f'INSERT INTO "{table}" (fid, geom, {names}) SELECT fid + ?, geom, {values} '
                f"FROM staging.{_STAGE} ORDER BY fid", (base, *constants.values()))
    con.execute(f'INSERT INTO "rtree_{table}_geom" SELECT fid + ?, {", ".join(_BBOX)} FROM staging.{_STAGE}', (base,))
    con.execute(trigger_sql)
    con.execute(
        "UPDATE gpkg_contents SET last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
        f'min_x=(SELECT MIN(minx) FROM "rtree_{table}_geom"), max_x=(SELECT MAX(maxx) FROM "rtree_{table}_geom"), '
        f'min_y=(SELECT MIN(miny) FROM "rtree_{table}_geom"), max_y=(SELECT MAX(maxy) FROM "rtree_{table}_geom") '
        "WHERE table_name=?", (table,))


_STAGE_TYPES = {"INTEGER": pa.int32(), "TEXT": pa.large_string(), "REAL": pa.float64()}


def stage_table(frame: pd.DataFrame) -> pa.Table | None:
    """The chunk encoder of a GeoPackage load: the chunk as an Arrow table with ISO WKB and each feature's
    bounds (for the rtree), which GDAL writes to the staging GeoPackage as it is. Runs in the workers."""
    if frame.empty:
        return None
    geoms = shapely.from_wkb(np.asarray(frame[EWKB_COLUMN], dtype=object))
    columns = {name: pa.array(frame[name], type=_STAGE_TYPES[sqlite], from_pandas=True)
               for name, _, sqlite in FEATURE_COLUMNS[1:]}
    columns.update(_bbox_columns(geoms))
    columns["geom"] = pa.array(shapely.to_wkb(geoms), type=pa.binary())
    return pa.table(columns)


def _bbox_columns(geoms: np.ndarray) -> dict[str, np.ndarray]:
    """The staged bounds columns (_BBOX) of ``geoms``."""
    bounds = shapely.bounds(geoms)
    return {col: bounds[:, i] for col, i in zip(_BBOX, (0, 2, 1, 3), strict=True)}


def _stage(rows: pa.Table | gpd.GeoDataFrame, path: Path, geometry_type: str, append: bool) -> None:
    """Write rows to a private staging GeoPackage (no spatial index: the rtree is filled on publishing):
    a load's chunks come as Arrow tables (see :func:`stage_table`), conflict patches as a GeoDataFrame."""
    if isinstance(rows, gpd.GeoDataFrame):
        rows = rows.assign(**_bbox_columns(rows.geometry.values))
        pyogrio.write_dataframe(rows, path, layer=_STAGE, driver="GPKG", geometry_type=geometry_type, append=append,
                                layer_options={"SPATIAL_INDEX": "NO"})
        return
    pyogrio.raw.write_arrow(rows, path, layer=_STAGE, driver="GPKG", geometry_name="geom",
                            geometry_type=geometry_type, crs="EPSG:4490", append=append,
                            layer_options={"SPATIAL_INDEX": "NO"})


def _migrations() -> list[tuple[int, str, list[str]]]:
    """Ordered schema migrations; each runs once, inside the init transaction."""
    first = []
    first += _immutable_triggers("mp_audit_log", "append-only")
    first += _immutable_triggers("mp_plan_versions", "immutable")
    for layer_id in LAYER_IDS:
        table = feature_table(layer_id)
        first.append(f'CREATE INDEX IF NOT EXISTS "{table}_version" ON "{table}" (version)')
        first += _immutable_triggers(table, "immutable: every load makes a new version")
    second = [*_immutable_triggers("mp_conflict_events", "append-only"),
              *_immutable_triggers("mp_detection_runs", "immutable"),
              *_immutable_triggers(PATCH_TABLE, "immutable: every run adds its own patches"),
              f'CREATE INDEX IF NOT EXISTS "{PATCH_TABLE}_run" ON "{PATCH_TABLE}" (run_id)',
              "CREATE INDEX IF NOT EXISTS mp_conflict_events_conflict ON mp_conflict_events (conflict_id)"]
    return [(1, "plan layers, versions, audit trail", first), (2, "detection runs, conflict patches, ledger", second),
            (3, "approval records, their events, site checks", _record_tables(3)),
            (4, "users and API tokens", _record_tables(4))]


def _record_tables(migration: int) -> list[str]:
    third = []
    for table in RECORD_MIGRATIONS[migration]:
        columns = RECORD_TABLES[table]
        key = RECORD_KEYS[table]
        cols = [f"{name} {sqlite} PRIMARY KEY" + (" AUTOINCREMENT" if name == "id" else "") if name == key
                else f"{name} {sqlite}" for name, _pg, sqlite in columns]
        third.append(f"CREATE TABLE {table} ({', '.join(cols)})")
        third.append("INSERT INTO gpkg_contents (table_name, data_type, identifier, description) "
                     f"VALUES ('{table}', 'attributes', '{table}', 'multiplan approvals')")
    third += [f"CREATE INDEX {t}_{c} ON {t} ({c})" for t, c in RECORD_INDEXES if t in RECORD_MIGRATIONS[migration]]
    for table, what in APPEND_ONLY.items():
        if table in RECORD_MIGRATIONS[migration]:
            third += _immutable_triggers(table, what)
    return third


def _empty_patch_frame() -> gpd.GeoDataFrame:
    dtypes = {"INTEGER": "Int64", "REAL": "float64", "TEXT": "str"}
    cols = {name: pd.Series([], dtype=dtypes[t]) for name, _pg, t in PATCH_STORE_COLUMNS}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=4490))


class _GpkgLedger(LedgerTransaction):
    def __init__(self, con: sqlite3.Connection, staged: bool) -> None:
        self.con = con
        self.staged = staged

    def add_run(self, record: dict[str, Any]) -> int:
        cur = self.con.execute(f"INSERT INTO mp_detection_runs ({', '.join(record)}) VALUES "
                               f"({', '.join('?' * len(record))})", tuple(record.values()))
        return int(cur.lastrowid)

    def add_patches(self, run_id: int, patches: gpd.GeoDataFrame) -> None:
        if self.staged:
            _publish(self.con, PATCH_TABLE, [c[0] for c in PATCH_STORE_COLUMNS if c[0] != "run_id"], {"run_id": run_id})

    def cases(self, rules: list[str] | None = None, conflict_id: str | None = None) -> list[dict[str, Any]]:
        if conflict_id is not None:
            rows = self.con.execute("SELECT * FROM mp_conflicts WHERE conflict_id=?", (conflict_id,))
        else:
            rows = self.con.execute(f"SELECT * FROM mp_conflicts WHERE rule IN ({', '.join('?' * len(rules or []))})",
                                    tuple(rules or []))
        return [dict(r) for r in rows]

    def put_case(self, row: dict[str, Any], new: bool) -> None:
        values = [row.get(c) for c in CASE_COLUMNS]
        if new:
            self.con.execute(f"INSERT INTO mp_conflicts ({', '.join(CASE_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(CASE_COLUMNS))})", values)
        else:
            sets = ", ".join(f"{c}=?" for c in CASE_COLUMNS[1:])
            self.con.execute(f"UPDATE mp_conflicts SET {sets} WHERE conflict_id=?", (*values[1:], values[0]))

    def add_event(self, row: dict[str, Any]) -> None:
        self.con.execute(f"INSERT INTO mp_conflict_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(EVENT_COLUMNS))})", [row.get(c) for c in EVENT_COLUMNS])


class _GpkgRecords(RecordTransaction):
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def insert(self, table: str, row: dict[str, Any]) -> int | None:
        names = checked_columns(table, row)
        cur = self.con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                               tuple(row.values()))
        return int(cur.lastrowid) if RECORD_KEYS[table] == "id" else None

    def update(self, table: str, key: Any, values: dict[str, Any]) -> None:
        names = checked_columns(table, values)
        self.con.execute(f"UPDATE {table} SET {', '.join(f'{n}=?' for n in names)} WHERE {RECORD_KEYS[table]}=?",
                         (*values.values(), key))

    def select(self, table: str, where: dict[str, Any] | None = None, lock: bool = False) -> list[dict[str, Any]]:
        where = where or {}
        names = checked_columns(table, where)
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(f"{n}=?" for n in names) if names else "")
        return [dict(r) for r in self.con.execute(sql + " ORDER BY rowid", tuple(where.values()))]


class _GpkgLoad(LoadSession):
    def __init__(self, store: GpkgStore, meta: LoadMeta, geometry: str) -> None:
        self.store = store
        self.meta = meta
        self.geometry_type = GEOMETRY_TYPES[geometry]
        self._tmp = tempfile.TemporaryDirectory(prefix="multiplan-stage-")
        self.stage_path = Path(self._tmp.name) / "stage.gpkg"
        self.rows = 0

    encoder = staticmethod(stage_table)

    def write(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        _stage(table, self.stage_path, self.geometry_type, append=self.rows > 0)
        self.rows += table.num_rows

    def commit(self, summary: dict[str, Any]) -> PlanVersion:
        table = feature_table(self.meta.layer)
        cols = [c[0] for c in FEATURE_COLUMNS if c[0] != "version"]
        con = self.store._connect()
        try:
            con.execute(f"PRAGMA cache_size = -{PUBLISH_CACHE_KIB}")
            con.execute("ATTACH DATABASE ? AS staging", (str(self.stage_path),))
            con.execute("BEGIN IMMEDIATE")  # the write lock serialises concurrent loads
            version = con.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM mp_plan_versions WHERE layer=?",
                                  (self.meta.layer,)).fetchone()[0]
            if self.rows:
                _publish(con, table, [c for c in cols], {"version": version})
            record = version_record(self.meta, version, summary)
            con.execute(f"INSERT INTO mp_plan_versions ({', '.join(record)}) VALUES ({', '.join('?' * len(record))})",
                        tuple(record.values()))
            _audit(con, "load", self.meta.layer, version, audit_detail(self.meta, summary), self.meta.actor)
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError("store_write_failed", store=self.store.url, detail=str(exc)) from exc
            raise
        finally:
            if not con.in_transaction:
                con.execute("DETACH DATABASE staging")
            con.close()
            self._tmp.cleanup()
        return version_from_row(record)

    def abort(self, reason: str) -> None:
        self._tmp.cleanup()
        con = self.store._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            _audit(con, "load_failed", self.meta.layer, None,
                   {"source": self.meta.source_name, "sha256": self.meta.source_sha256,
                    "label": self.meta.label, "reason": reason}, self.meta.actor)
            con.execute("COMMIT")
        finally:
            con.close()
