"""The production store: PostGIS through SQLAlchemy 2, GeoAlchemy2 and psycopg 3.

Each load runs in one transaction holding a per-layer advisory lock, so concurrent loads of a layer
are serialised and version numbers have neither duplicates nor holes; features go in with COPY.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
import sqlalchemy as sa
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq.encoders import LargeStringEncoderBuilder
from pgpq.schema import Jsonb
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, OperationalError

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
    VERSION_STAMP_COLUMNS,
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
    current_actor,
    feature_table,
    json_default,
    normalise_read_frame,
    now_utc,
    version_from_row,
    version_record,
)

_PG_TYPES = {"integer": sa.Integer, "text": sa.Text, "double precision": sa.Float, "jsonb": JSONB}


def _metadata() -> sa.MetaData:
    from geoalchemy2 import Geometry  # for migrations only: it takes a tenth of a second to import

    md = sa.MetaData()
    sa.Table("mp_schema_migrations", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("description", sa.Text, nullable=False), sa.Column("applied_at", sa.Text, nullable=False))
    sa.Table("mp_plan_versions", md,
             sa.Column("layer", sa.Text, primary_key=True), sa.Column("version", sa.Integer, primary_key=True),
             sa.Column("label", sa.Text), sa.Column("source_name", sa.Text, nullable=False),
             sa.Column("source_sha256", sa.Text, nullable=False), sa.Column("loaded_at", sa.Text, nullable=False),
             sa.Column("loaded_by", sa.Text, nullable=False), sa.Column("status", sa.Text, nullable=False),
             sa.Column("n_read", sa.Integer, nullable=False), sa.Column("n_loaded", sa.Integer, nullable=False),
             sa.Column("n_rejected", sa.Integer, nullable=False), sa.Column("crs", sa.Text, nullable=False),
             sa.Column("crs_guessed", sa.Integer, nullable=False), sa.Column("encoding", sa.Text, nullable=False),
             sa.Column("encoding_guessed", sa.Integer, nullable=False),
             sa.Column("report_json", JSONB, nullable=False))
    sa.Table("mp_audit_log", md, sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
             sa.Column("at", sa.Text, nullable=False), sa.Column("actor", sa.Text, nullable=False),
             sa.Column("action", sa.Text, nullable=False), sa.Column("layer", sa.Text),
             sa.Column("version", sa.Integer), sa.Column("detail", JSONB, nullable=False))
    specs = load_layer_specs()
    for layer_id in LAYER_IDS:
        geom_type = GEOMETRY_TYPES[specs[layer_id].geometry].upper()
        # one partition per version: a load fills a table of its own, indexes it, then attaches it
        sa.Table(feature_table(layer_id), md,
                 *[sa.Column(name, _PG_TYPES[pg], nullable=name not in ("version", "feature_no"))
                   for name, pg, _ in FEATURE_COLUMNS],
                 sa.Column("geom", Geometry(geom_type, srid=4490, spatial_index=True), nullable=False),
                 sa.PrimaryKeyConstraint("version", "feature_no"),
                 postgresql_partition_by="LIST (version)")
    return md


_IMMUTABLE_FN = """CREATE OR REPLACE FUNCTION mp_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%% is %%', TG_TABLE_NAME, TG_ARGV[0]; END $$"""


def _migration_1(conn: sa.Connection) -> None:
    _metadata().create_all(conn, checkfirst=False)  # in our own schema, whatever the search path shows
    conn.exec_driver_sql(_IMMUTABLE_FN)
    tables = [("mp_audit_log", "append-only"), ("mp_plan_versions", "immutable")]
    tables += [(feature_table(lid), "immutable: every load makes a new version") for lid in LAYER_IDS]
    for table, what in tables:
        conn.exec_driver_sql(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION mp_refuse_change('{what}')")


def _ledger_metadata() -> sa.MetaData:
    from geoalchemy2 import Geometry

    md = sa.MetaData()
    text_cols = {"at", "actor", "versions", "rule_set_sha256", "summary"}
    sa.Table("mp_detection_runs", md, sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
             *[sa.Column(c, sa.Text, nullable=False) for c in sorted(text_cols)])
    case_types = {"version_a": sa.Integer, "version_b": sa.Integer, "area_m2": sa.Float, "first_run": sa.Integer,
                  "last_run": sa.Integer}
    sa.Table("mp_conflicts", md, *[sa.Column(c, case_types.get(c, sa.Text), primary_key=c == "conflict_id")
                                   for c in CASE_COLUMNS])
    sa.Table("mp_conflict_events", md, sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
             *[sa.Column(c, sa.Integer if c == "run_id" else sa.Text) for c in EVENT_COLUMNS],
             sa.Index("mp_conflict_events_conflict", "conflict_id"))
    sa.Table(PATCH_TABLE, md, sa.Column("fid", sa.BigInteger, sa.Identity(), primary_key=True),
             *[sa.Column(name, _PG_TYPES[pg]) for name, pg, _ in PATCH_STORE_COLUMNS],
             sa.Column("geom", Geometry("MULTIPOLYGON", srid=4490, spatial_index=True), nullable=False),
             sa.Index(f"{PATCH_TABLE}_run", "run_id"))
    return md


def _migration_2(conn: sa.Connection) -> None:
    _ledger_metadata().create_all(conn, checkfirst=False)
    for table, what in (("mp_conflict_events", "append-only"), ("mp_detection_runs", "immutable"),
                        (PATCH_TABLE, "immutable: every run adds its own patches")):
        conn.exec_driver_sql(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION mp_refuse_change('{what}')")


def _records_metadata(migration: int) -> sa.MetaData:
    md = sa.MetaData()
    types = {"text": sa.Text, "bytea": sa.LargeBinary, "bigint": sa.BigInteger, "double precision": sa.Float}
    for table in RECORD_MIGRATIONS[migration]:
        columns = RECORD_TABLES[table]
        key = RECORD_KEYS[table]
        cols = [sa.Column(name, types[pg], sa.Identity(), primary_key=True) if name == key == "id"
                else sa.Column(name, types[pg], primary_key=name == key) for name, pg, _ in columns]
        if key is None:
            cols.append(sa.Column("row_id", sa.BigInteger, sa.Identity(), primary_key=True))
        sa.Table(table, md, *cols, *[sa.Index(f"{t}_{c}", c) for t, c in RECORD_INDEXES if t == table])
    return md


def _record_migration(migration: int, conn: sa.Connection) -> None:
    _records_metadata(migration).create_all(conn, checkfirst=False)
    for table, what in APPEND_ONLY.items():
        if table in RECORD_MIGRATIONS[migration]:
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                                 f"FOR EACH ROW EXECUTE FUNCTION mp_refuse_change('{what}')")


#: Ordered schema migrations: (number, description, function run inside the init transaction).
MIGRATIONS = [(1, "plan layers, versions, audit trail", _migration_1),
              (2, "detection runs, conflict patches, ledger", _migration_2),
              (3, "approval records, their events, site checks", partial(_record_migration, 3)),
              (4, "users and API tokens", partial(_record_migration, 4))]
PATCH_TABLE = "conflict_patches"
# the store lives in the first schema of the search path; tables further down it are someone else's
_IN_OWN_SCHEMA = "SELECT to_regclass(quote_ident(current_schema()) || '.{table}')"
_INIT_LOCK = 7_471_001  # advisory-lock key that serialises concurrent `init`s


def _in_box(sql: str, params: dict[str, Any], bbox: tuple[float, float, float, float] | None
            ) -> tuple[str, dict[str, Any]]:
    """``sql`` narrowed to rows whose geometry's box meets ``bbox`` (through the GiST index), when given."""
    if bbox is None:
        return sql, params
    return (sql + " AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)",
            {**params, **dict(zip(("x0", "y0", "x1", "y1"), map(float, bbox), strict=True))})


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _audit(conn: sa.Connection, action: str, layer: str | None, version: int | None,
           detail: dict[str, Any], actor: str | None = None) -> None:
    conn.execute(sa.text("INSERT INTO mp_audit_log (at, actor, action, layer, version, detail) "
                         "VALUES (:at, :actor, :action, :layer, :version, CAST(:detail AS jsonb))"),
                 {"at": now_utc(), "actor": actor or current_actor(), "action": action, "layer": layer,
                  "version": version, "detail": json.dumps(detail, ensure_ascii=False, default=json_default)})


_NEAR_COLUMNS = ",".join(FeatureArrays.COLUMNS)


_NO_PARALLEL = "max_parallel_workers_per_gather = 0"
# the version stamp, then the newest detection run
_STAMP_AND_RUN_SQL = (f"SELECT {VERSION_STAMP_COLUMNS}, (SELECT MAX(id) FROM mp_detection_runs) "
                      "FROM mp_plan_versions")


def _one_request(conn: sa.Connection) -> None:
    """For the small queries that answer one web request (a tile, a site check's features): no parallel
    workers. Starting them costs more than such a query, and under concurrent requests the cores are
    busy anyway: measured, uncached tiles went from 148 to 343 a second with 20 clients."""
    if not conn.info.get(_NO_PARALLEL):  # a held connection has it for its session already
        conn.exec_driver_sql("SET LOCAL " + _NO_PARALLEL)


class PostgisStore(PlanStore):
    """A :class:`PlanStore` in a PostGIS database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(_sqlalchemy_url(url), pool_pre_ping=True)
        self._ready = False
        self._held = threading.local()

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _checkout(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except (OperationalError, DBAPIError) as exc:
            raise StorageError("store_unreachable", store=self._safe_url(),
                               detail=str(exc.orig).splitlines()[0] if exc.orig else str(exc)) from exc

    @contextmanager
    def one_connection(self) -> Iterator[None]:
        """Store calls in this block, on this thread, share one connection in autocommit mode: a web request
        then costs one pool checkout and ping rather than one per call, and each read one round trip
        rather than three (BEGIN, the query, ROLLBACK). Writes still run in transactions (``_transaction``).
        The connection is checked out at the first call, so a block that makes none (a cached tile) costs
        nothing. Its session runs without parallel workers, as ``_one_request`` asks, and with generic plans
        for prepared statements. In the block, ``latest_run_id`` answers with the newest run read along with
        the version list, if that came first (as in a site check)."""
        if getattr(self._held, "open", False):
            yield
            return
        self._held.open, self._held.conn, self._held.newest_run = True, None, None
        try:
            yield
        finally:
            conn = self._held.conn
            self._held.open, self._held.conn, self._held.newest_run = False, None, None
            if conn is not None:
                conn.close()

    def _hold(self) -> sa.Connection | None:
        """The block's connection (see ``one_connection``), checked out at its first use; None outside one."""
        if not getattr(self._held, "open", False):
            return None
        if self._held.conn is None:
            conn = self._checkout()
            try:
                if not conn.info.get(_NO_PARALLEL):  # info lives with the pooled connection: once per session
                    conn.exec_driver_sql("SET " + _NO_PARALLEL)
                    # Statements repeated on the session (psycopg prepares them after five runs) keep one
                    # generic plan: planning a check's feature query, mostly PostGIS estimating each && on
                    # each partition, took 0.6 ms of its 1 ms. These are index lookups in small boxes,
                    # where the generic plan is the custom one.
                    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    conn.commit()
                    conn.info[_NO_PARALLEL] = True
                conn.execution_options(isolation_level="AUTOCOMMIT")
            except BaseException:
                conn.close()
                raise
            self._held.conn = conn
        return self._held.conn

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        """A connection for reads: the held one (see ``one_connection``) or one from the pool."""
        held = self._hold()
        if held is None:
            with self._checkout() as conn:
                yield conn
        else:
            try:
                yield held
            finally:  # ends SQLAlchemy's autobegun Transaction; in autocommit mode the server sees nothing
                if held.in_transaction():
                    held.rollback()

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """A connection inside a transaction, committed when the block ends without an error."""
        held = self._hold()
        if held is None:
            with self._checkout() as conn, conn.begin():
                yield conn
            return
        held.execution_options(isolation_level=held.default_isolation_level)
        try:
            with held.begin():
                yield held
        finally:
            if not held.invalidated:  # a dropped connection is discarded when the block ends
                held.execution_options(isolation_level="AUTOCOMMIT")

    def _require_init(self, conn: sa.Connection) -> None:
        if self._ready:  # checked once per store object: a schema does not go away under a running program
            return
        if conn.exec_driver_sql(_IN_OWN_SCHEMA.format(table="mp_plan_versions")).scalar() is None:
            raise StorageError("store_not_initialised", store=self._safe_url())
        schema = conn.exec_driver_sql("SELECT MAX(id) FROM mp_schema_migrations").scalar()
        check_schema_version(self._safe_url(), schema, len(MIGRATIONS))
        self._ready = True

    def init(self) -> list[str]:
        applied = []
        with self._transaction() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _INIT_LOCK})
            exists = conn.exec_driver_sql(_IN_OWN_SCHEMA.format(table="mp_schema_migrations")).scalar()
            done = set(conn.scalars(sa.text("SELECT id FROM mp_schema_migrations"))) if exists else set()
            for number, description, migrate in MIGRATIONS:
                if number in done:
                    continue
                migrate(conn)
                conn.execute(sa.text("INSERT INTO mp_schema_migrations VALUES (:i, :d, :t)"),
                             {"i": number, "d": description, "t": now_utc()})
                applied.append(f"{number}: {description}")
            if applied:
                _audit(conn, "init", None, None, {"migrations": applied, "store": self._safe_url()})
        return applied

    def begin_load(self, meta: LoadMeta, geometry: str) -> LoadSession:
        return _PostgisLoad(self, meta)

    def _version_rows(self, known: tuple | None) -> tuple[tuple, list[dict[str, Any]] | None]:
        with self._connect() as conn:
            self._require_init(conn)
            # the newest detection run comes along: a site check asks for both, and a round trip costs more
            *stamp, newest_run = conn.exec_driver_sql(_STAMP_AND_RUN_SQL).one()
            stamp = tuple(stamp)
            if getattr(self._held, "open", False):
                self._held.newest_run = (newest_run,)
            if stamp == known:
                return stamp, None
            rows = conn.exec_driver_sql("SELECT * FROM mp_plan_versions ORDER BY layer, version")
            return stamp, [dict(r._mapping) for r in rows]

    def read_features(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None
                      ) -> gpd.GeoDataFrame:
        self.version(layer, version)
        cols = ", ".join([c[0] for c in FEATURE_COLUMNS] + ["geom"])
        sql, params = _in_box(f"SELECT {cols} FROM {feature_table(layer)} WHERE version = :v", {"v": int(version)},
                              bbox)
        with self._connect() as conn:
            frame = gpd.read_postgis(sa.text(sql + " ORDER BY feature_no"), conn, geom_col="geom", params=params)
        return normalise_read_frame(frame.rename_geometry("geometry"))

    def features_near(self, versions: dict[str, int], bbox: tuple[float, float, float, float],
                      bboxes: dict[str, tuple[float, float, float, float]] | None = None
                      ) -> dict[str, FeatureArrays]:
        """One round trip: each layer's partition queried through its GiST index, the results stacked."""
        if not versions:
            return {}
        # The SQL goes straight to the driver: compiling a 60-parameter text clause cost more than the query.
        # Boxes are named once each and the text kept short: psycopg caches its parse of a query only up to
        # 4,096 characters and 50 parameters, and parsing this one each time cost half a millisecond.
        params: dict[str, Any] = {}
        boxes: dict[tuple[float, ...], str] = {}
        parts = []
        layers = sorted(versions)
        for i, layer in enumerate(layers):
            box = tuple(map(float, (bboxes or {}).get(layer, bbox)))
            if box not in boxes:
                b = boxes[box] = f"b{len(boxes)}"
                params.update(zip((f"{b}x0", f"{b}y0", f"{b}x1", f"{b}y1"), box, strict=True))
            b = boxes[box]
            params[f"v{i}"] = int(versions[layer])
            parts.append(f"(SELECT {i} n,feature_no,{_NEAR_COLUMNS},ST_AsBinary(geom) FROM {feature_table(layer)} "
                         f"WHERE version=%(v{i})s AND geom&&ST_MakeEnvelope(%({b}x0)s,%({b}y0)s,%({b}x1)s,"
                         f"%({b}y1)s,4490))")
        sql = " UNION ALL ".join(parts) + " ORDER BY 1,2"
        with self._connect() as conn:
            _one_request(conn)
            rows = conn.exec_driver_sql(sql, params).all()
        layer_no = np.fromiter((r[0] for r in rows), dtype=int, count=len(rows))
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(FeatureArrays.COLUMNS) + 3)
        geoms = shapely.from_wkb(np.array([bytes(w) for w in columns[-1]], dtype=object)) if rows \
            else np.array([], dtype=object)

        def obj(j: int) -> np.ndarray:
            return np.array(columns[j], dtype=object)
        def num(j: int) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in columns[j]], dtype=float)
        everything = FeatureArrays(np.asarray(geoms, dtype=object), obj(2), obj(3), obj(4), obj(5), obj(6), num(7),
                                   num(8))
        return {layer: everything.take(np.flatnonzero(layer_no == i)) for i, layer in enumerate(layers)}

    def audit(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        with self._connect() as conn:  # one INSERT: atomic alone, so a held connection needs no BEGIN/COMMIT
            self._require_init(conn)
            _audit(conn, action, None, None, detail, actor)
            conn.commit()

    def audit_log(self, layer: str | None = None) -> list[AuditEntry]:
        with self._connect() as conn:
            self._require_init(conn)
            sql = "SELECT * FROM mp_audit_log" + (" WHERE layer = :l" if layer else "") + " ORDER BY id"
            return [audit_from_row(dict(r._mapping)) for r in conn.execute(sa.text(sql), {"l": layer})]

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _ledger(self, patches: gpd.GeoDataFrame | None = None) -> Iterator[LedgerTransaction]:
        try:
            self._held.newest_run = None  # a ledger transaction may add a run
            with self._transaction() as conn:
                self._require_init(conn)
                yield _PostgisLedger(conn)
        except (OperationalError, DBAPIError) as exc:
            raise StorageError("store_write_failed", store=self._safe_url(),
                               detail=str(exc.orig or exc).splitlines()[0]) from exc

    @contextmanager
    def _records(self, write: bool = True) -> Iterator[RecordTransaction]:
        try:
            # reads need no transaction of their own: one statement sees one snapshot
            with self._transaction() if write else self._connect() as conn:
                self._require_init(conn)
                yield _PostgisRecords(conn)
        except (OperationalError, DBAPIError) as exc:
            raise StorageError("store_write_failed", store=self._safe_url(),
                               detail=str(exc.orig or exc).splitlines()[0]) from exc

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self._connect() as conn:
            self._require_init(conn)
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def latest_run_id(self) -> int | None:
        seen = getattr(self._held, "newest_run", None)  # read with the versions, in this block
        found = seen[0] if seen is not None else self._rows("SELECT MAX(id) AS id FROM mp_detection_runs")[0]["id"]
        return None if found is None else int(found)

    def detection_runs(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM mp_detection_runs ORDER BY id")

    def read_patches(self, run_id: int, bbox: tuple[float, float, float, float] | None = None
                     ) -> gpd.GeoDataFrame:
        cols = ", ".join([c[0] for c in PATCH_STORE_COLUMNS] + ["geom"])
        sql, params = _in_box(f"SELECT {cols} FROM {PATCH_TABLE} WHERE run_id = :r", {"r": int(run_id)}, bbox)
        with self._connect() as conn:
            frame = gpd.read_postgis(sa.text(sql + " ORDER BY fid"), conn, geom_col="geom", params=params)
        return frame.rename_geometry("geometry").reset_index(drop=True)

    def conflicts(self, status: str | None = None, rule: str | None = None, conflict_id: str | None = None
                  ) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM mp_conflicts WHERE (CAST(:s AS text) IS NULL OR status = :s) "
                          "AND (CAST(:r AS text) IS NULL OR rule = :r) "
                          "AND (CAST(:c AS text) IS NULL OR conflict_id = :c) "
                          "ORDER BY rule, conflict_id", s=status, r=rule, c=conflict_id)

    def conflict_events(self, conflict_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM mp_conflict_events WHERE conflict_id = :c ORDER BY id", c=conflict_id)

    # -- the map (added for the vector tiles and the OGC API): tiles cut by ST_AsMVT, pages by the GiST index --
    def _mvt(self, columns: dict[str, str], source: str, where: str, name: str, id_column: str | None, z: int,
             x: int, y: int, params: dict[str, Any]) -> bytes:
        """One MVT layer: the rows of ``source`` (alias t) meeting the buffered tile, clipped and, below
        DETAIL_ZOOM, those under a pixel left out and the rest simplified, exactly as multiplan.tiles does."""
        from multiplan import tiles

        tiles.check_tile(z, x, y)
        tb = tiles.tile_bounds(z, x, y)
        pad = (tb[2] - tb[0]) * tiles.BUFFER / tiles.EXTENT
        detail = z >= tiles.DETAIL_ZOOM
        merc = "ST_ClipByBox2D(ST_Transform(t.geom, 3857), ST_MakeEnvelope(:c0, :c1, :c2, :c3, 3857))"
        geom = merc if detail else f"ST_SimplifyPreserveTopology({merc}, :tol)"
        lat = tiles.MAX_LATITUDE
        size = (f"GREATEST((ST_XMax(t.geom) - ST_XMin(t.geom)) * {tiles.WORLD / 180.0!r}, "
                f"(ln(tan(pi() / 4 + radians(LEAST(ST_YMax(t.geom), {lat!r})) / 2)) "
                f"- ln(tan(pi() / 4 + radians(GREATEST(ST_YMin(t.geom), {-lat!r})) / 2))) * {tiles.EARTH_RADIUS!r})")
        select = ", ".join(f"{expr} AS {column}" for column, expr in columns.items())
        sql = (f"WITH found AS (SELECT {select}, {geom} AS g FROM {source} WHERE {where} "
               "AND t.geom && ST_MakeEnvelope(:l0, :l1, :l2, :l3, 4490)"
               + ("" if detail else f" AND {size} >= :minpx") + " ORDER BY 1), "
               f"mvt AS (SELECT {', '.join(columns)}, ST_AsMVTGeom(g, ST_TileEnvelope(:z, :x, :y), "
               f"{tiles.EXTENT}, {tiles.BUFFER}, true) AS geom FROM found) "
               f"SELECT ST_AsMVT(mvt.*, :name, {tiles.EXTENT}, 'geom'"
               + (f", '{id_column}'" if id_column else "") + ") FROM mvt WHERE geom IS NOT NULL")
        params = {**params, "z": z, "x": x, "y": y, "name": name, "tol": tiles.SIMPLIFY_PIXELS * tiles.pixel_size(z),
                  "minpx": tiles.pixel_size(z),
                  **dict(zip(("c0", "c1", "c2", "c3"), (tb[0] - pad, tb[1] - pad, tb[2] + pad, tb[3] + pad),
                             strict=True)),
                  **dict(zip(("l0", "l1", "l2", "l3"), tiles.tile_lonlat_bounds(z, x, y, buffered=True),
                             strict=True))}
        with self._connect() as conn:
            _one_request(conn)
            data = conn.execute(sa.text(sql), params).scalar()
        return bytes(data or b"")

    def mvt_tile(self, layer: str, version: int, z: int, x: int, y: int) -> bytes:
        self.version(layer, version)
        from multiplan.tiles import PLAN_PROPERTIES

        columns = {c: f"t.{c}" for c in ("feature_no", *PLAN_PROPERTIES)}
        return self._mvt(columns, f"{feature_table(layer)} t", "t.version = :v", layer, "feature_no", z, x, y,
                         {"v": int(version)})

    def mvt_patch_tile(self, run_id: int, z: int, x: int, y: int) -> bytes:
        columns = {"conflict_id": "t.conflict_id", "rule": "t.rule", "severity": "t.severity", "status": "c.status"}
        return self._mvt(columns, f"{PATCH_TABLE} t LEFT JOIN mp_conflicts c ON c.conflict_id = t.conflict_id",
                         "t.run_id = :r", "conflicts", None, z, x, y, {"r": int(run_id)})

    def feature_page(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[gpd.GeoDataFrame, int]:
        self.version(layer, version)
        table = feature_table(layer)
        where, params = "version = :v", {"v": int(version), "lim": int(limit), "off": int(offset)}
        if bbox is not None:
            where += (" AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490) "
                      "AND ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490))")
            params.update(zip(("x0", "y0", "x1", "y1"), map(float, bbox), strict=True))
        cols = ", ".join([c[0] for c in FEATURE_COLUMNS] + ["geom"])
        with self._connect() as conn:
            matched = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), params).scalar_one())
            frame = gpd.read_postgis(sa.text(f"SELECT {cols} FROM {table} WHERE {where} ORDER BY feature_no "
                                             "LIMIT :lim OFFSET :off"), conn, geom_col="geom", params=params)
        return normalise_read_frame(frame.rename_geometry("geometry")), matched

    def find_features(self, layer: str, version: int, column: str, value: Any) -> gpd.GeoDataFrame:
        check_lookup_column(column)
        self.version(layer, version)
        cols = ", ".join([c[0] for c in FEATURE_COLUMNS] + ["geom"])
        value = int(value) if column == "feature_no" else str(value)
        with self._connect() as conn:
            frame = gpd.read_postgis(sa.text(f"SELECT {cols} FROM {feature_table(layer)} WHERE version = :v "
                                             f"AND {column} = :value ORDER BY feature_no"), conn, geom_col="geom",
                                     params={"v": int(version), "value": value})
        return normalise_read_frame(frame.rename_geometry("geometry"))

    def feature_bounds(self, layer: str, version: int, by: str | None = None
                       ) -> dict[Any, tuple[float, float, float, float]]:
        check_bounds_grouping(by)
        self.version(layer, version)
        key = by or "NULL"
        rows = self._rows(f"SELECT k, ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 FROM "
                          f"(SELECT {key} AS k, ST_Extent(geom) AS e FROM {feature_table(layer)} WHERE version = :v "
                          f"GROUP BY 1) s WHERE e IS NOT NULL", v=int(version))
        return {r["k"]: (r["x0"], r["y0"], r["x1"], r["y1"]) for r in rows}

    def change_stamp(self, what: str) -> tuple:
        sql = change_stamp_sql(what)
        with self._connect() as conn:
            self._require_init(conn)
            return tuple(conn.exec_driver_sql(sql).one())


_ARROW_TYPES = {"integer": pa.int32(), "double precision": pa.float64(), "text": pa.string(),
                "jsonb": pa.large_string()}


def binary_copy(frame: pd.DataFrame, version: int) -> bytes | None:
    """The features of ``frame`` as a complete PostgreSQL binary COPY stream (encoded by pgpq).

    Binary COPY hands each field to its column's binary input: geometry's is EWKB (Arrow binary), and
    pgpq writes JSON text in jsonb's binary form.
    """
    if frame.empty:
        return None
    columns = {"version": pa.array(np.full(len(frame), version, dtype=np.int32))}
    for name, pg, _ in FEATURE_COLUMNS[1:]:
        if pg == "integer":
            columns[name] = pa.array(np.asarray(frame[name], dtype=np.int64).astype(np.int32))
        else:
            columns[name] = pa.array(frame[name], type=_ARROW_TYPES[pg], from_pandas=True)
    columns["geom"] = pa.array(frame[EWKB_COLUMN])
    table = pa.table(columns)
    encoders = {f.name: ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in table.schema}
    for name, pg, _ in FEATURE_COLUMNS[1:]:
        if pg == "jsonb":
            encoders[name] = LargeStringEncoderBuilder.new_with_output(table.schema.field(name), Jsonb())
    encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(table.schema, encoders)
    parts = [encoder.write_header(), *(encoder.write_batch(b) for b in table.to_batches()), encoder.finish()]
    return b"".join(bytes(p) for p in parts)


class _PostgisLedger(LedgerTransaction):
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add_run(self, record: dict[str, Any]) -> int:
        return int(self.conn.execute(sa.text(
            f"INSERT INTO mp_detection_runs ({', '.join(record)}) VALUES ({', '.join(':' + k for k in record)}) "
            "RETURNING id"), record).scalar_one())

    def add_patches(self, run_id: int, patches: gpd.GeoDataFrame) -> None:
        if patches.empty:
            return
        names = [c[0] for c in PATCH_STORE_COLUMNS]
        records = []
        for row, geom in zip(patches.drop(columns=patches.geometry.name).to_dict("records"),
                             patches.geometry.values, strict=True):
            record = {k: _plain(v) for k, v in row.items()}
            for k in _INT_PATCH & record.keys():
                record[k] = None if record[k] is None else int(record[k])
            records.append({**record, "run_id": run_id, "wkb": shapely.to_wkb(geom)})
        self.conn.execute(sa.text(
            f"INSERT INTO {PATCH_TABLE} ({', '.join(names)}, geom) VALUES "
            f"({', '.join(':' + n for n in names)}, ST_SetSRID(ST_GeomFromWKB(:wkb), 4490))"), records)

    def cases(self, rules: list[str] | None = None, conflict_id: str | None = None) -> list[dict[str, Any]]:
        if conflict_id is not None:
            rows = self.conn.execute(sa.text("SELECT * FROM mp_conflicts WHERE conflict_id = :c FOR UPDATE"),
                                     {"c": conflict_id})
        else:
            rows = self.conn.execute(sa.text("SELECT * FROM mp_conflicts WHERE rule = ANY(:r) FOR UPDATE"),
                                     {"r": list(rules or [])})
        return [dict(r._mapping) for r in rows]

    def put_case(self, row: dict[str, Any], new: bool) -> None:
        values = {c: _plain(row.get(c)) for c in CASE_COLUMNS}
        if new:
            sql = f"INSERT INTO mp_conflicts ({', '.join(CASE_COLUMNS)}) VALUES ({', '.join(':' + c for c in CASE_COLUMNS)})"
        else:
            sql = (f"UPDATE mp_conflicts SET {', '.join(f'{c} = :{c}' for c in CASE_COLUMNS[1:])} "
                   "WHERE conflict_id = :conflict_id")
        self.conn.execute(sa.text(sql), values)

    def add_event(self, row: dict[str, Any]) -> None:
        self.conn.execute(sa.text(f"INSERT INTO mp_conflict_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                                  f"({', '.join(':' + c for c in EVENT_COLUMNS)})"),
                          {c: _plain(row.get(c)) for c in EVENT_COLUMNS})


class _PostgisRecords(RecordTransaction):
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def insert(self, table: str, row: dict[str, Any]) -> int | None:
        names = checked_columns(table, row)
        returning = " RETURNING id" if RECORD_KEYS[table] == "id" else ""
        result = self.conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                                           f"({', '.join(':' + n for n in names)}){returning}"),
                                   {k: _plain(v) for k, v in row.items()})
        return int(result.scalar_one()) if returning else None

    def update(self, table: str, key: Any, values: dict[str, Any]) -> None:
        names = checked_columns(table, values)
        key_name = RECORD_KEYS[table]
        self.conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{n} = :{n}' for n in names)} "
                                  f"WHERE {key_name} = :_key"), {**{k: _plain(v) for k, v in values.items()},
                                                                "_key": key})

    def select(self, table: str, where: dict[str, Any] | None = None, lock: bool = False) -> list[dict[str, Any]]:
        where = where or {}
        names = checked_columns(table, where)
        order = RECORD_KEYS[table] or "row_id"
        sql = (f"SELECT {', '.join(c[0] for c in RECORD_TABLES[table])} FROM {table}"
               + (" WHERE " + " AND ".join(f"{n} = :{n}" for n in names) if names else "")
               + f" ORDER BY {order}" + (" FOR UPDATE" if lock else ""))
        rows = [dict(r._mapping) for r in self.conn.execute(sa.text(sql), where)]
        for row in rows:  # bytea comes back as memoryview
            for k, v in row.items():
                if isinstance(v, memoryview):
                    row[k] = bytes(v)
        return rows


_INT_PATCH = {name for name, pg, _ in PATCH_STORE_COLUMNS if pg == "integer"}


def _plain(value: Any) -> Any:
    """numpy scalars and NaN as the plain Python values a driver takes."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


class _PostgisLoad(LoadSession):
    def __init__(self, store: PostgisStore, meta: LoadMeta) -> None:
        self.store = store
        self.meta = meta
        self.table = feature_table(meta.layer)
        self.conn = store._checkout()
        try:
            self.trans = self.conn.begin()
            store._require_init(self.conn)
            # Held until commit or rollback: loads of one layer run one after another.
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"multiplan.load.{meta.layer}"})
            self.version = int(self.conn.execute(
                sa.text("SELECT COALESCE(MAX(version), 0) + 1 FROM mp_plan_versions WHERE layer = :l"),
                {"l": meta.layer}).scalar_one())
        except BaseException:
            self.conn.close()
            raise
        self.cols = [c[0] for c in FEATURE_COLUMNS] + ["geom"]
        self.partition = f"{self.table}_v{self.version}"  # from a fixed layer id and an integer
        self.encoder = partial(binary_copy, version=self.version)
        self.staged = False
        self.sealed = False

    def _failed(self, exc: BaseException) -> StorageError:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return StorageError("store_write_failed", store=self.store._safe_url(), detail=detail)

    def write(self, payload: bytes | None) -> None:
        if payload is None:
            return
        raw = self.conn.connection.driver_connection
        try:
            if not self.staged:
                # a plain table: no index to maintain row by row while COPY runs; the version check
                # (which lets the partition attach without a scan) costs nothing per row
                raw.execute(f"CREATE TABLE {self.partition} (LIKE {self.table} INCLUDING DEFAULTS, CONSTRAINT "
                            f"{self.partition}_version CHECK (version = {self.version}))")
                self.staged = True
            with raw.cursor() as cur, cur.copy(
                    f"COPY {self.partition} ({', '.join(self.cols)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
        except Exception as exc:
            raise self._failed(exc) from exc

    def seal(self) -> None:
        if not self.staged or self.sealed:
            return
        p = self.partition
        try:
            for sql in (f"ALTER TABLE {p} ADD PRIMARY KEY (version, feature_no)",
                        f"CREATE INDEX {p}_geom ON {p} USING gist (geom)"):
                self.conn.exec_driver_sql(sql)
        except Exception as exc:
            raise self._failed(exc) from exc
        self.sealed = True

    def commit(self, summary: dict[str, Any]) -> PlanVersion:
        record = version_record(self.meta, self.version, summary)
        self.seal()
        try:
            if self.staged:
                self.conn.exec_driver_sql(f"ALTER TABLE {self.table} ATTACH PARTITION {self.partition} "
                                          f"FOR VALUES IN ({self.version})")
            self.conn.execute(sa.text(
                f"INSERT INTO mp_plan_versions ({', '.join(record)}) VALUES "
                f"({', '.join(':' + k if k != 'report_json' else 'CAST(:report_json AS jsonb)' for k in record)})"),
                record)
            _audit(self.conn, "load", self.meta.layer, self.version, audit_detail(self.meta, summary), self.meta.actor)
            self.trans.commit()
        except Exception as exc:
            raise self._failed(exc) from exc
        finally:
            self.conn.close()
        return version_from_row(record)

    def abort(self, reason: str) -> None:
        try:
            if self.trans.is_active:
                self.trans.rollback()
        except Exception:  # the connection may be gone: the server has rolled back already
            pass
        finally:
            self.conn.close()
        with self.store._transaction() as conn:
            _audit(conn, "load_failed", self.meta.layer, None,
                   {"source": self.meta.source_name, "sha256": self.meta.source_sha256,
                    "label": self.meta.label, "reason": reason}, self.meta.actor)
