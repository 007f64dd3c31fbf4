"""The store interface shared by the embedded GeoPackage and PostGIS back-ends."""

from __future__ import annotations

import getpass
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from multiplan.specs import LAYER_IDS

#: Columns of every plan-feature table, besides the geometry (name, SQL type in PostGIS, in SQLite).
FEATURE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("version", "integer", "INTEGER"),
    ("feature_no", "integer", "INTEGER"),
    ("feature_key", "text", "TEXT"),
    ("orig_code", "text", "TEXT"),
    ("ydyh_code", "text", "TEXT"),
    ("ydyh_match", "text", "TEXT"),
    ("zone_code", "text", "TEXT"),
    ("xzqdm", "text", "TEXT"),
    ("level", "text", "TEXT"),
    ("corridor_m", "double precision", "REAL"),
    ("area_m2", "double precision", "REAL"),
    ("length_m", "double precision", "REAL"),
    ("source_attributes", "jsonb", "TEXT"),
)
FEATURE_COLUMN_NAMES = tuple(c[0] for c in FEATURE_COLUMNS)
#: OGR geometry type names of the stored layers, by spec geometry.
GEOMETRY_TYPES = {"polygon": "MultiPolygon", "line": "MultiLineString", "point": "MultiPoint"}

VERSION_STATUS_COMMITTED = "committed"
#: What tells whether a version list is current: versions are only ever added.
VERSION_STAMP_COLUMNS = "COUNT(*), MAX(loaded_at)"
VERSION_STAMP_SQL = f"SELECT {VERSION_STAMP_COLUMNS} FROM mp_plan_versions"


def feature_table(layer_id: str) -> str:
    """The table holding a layer's features; layer ids come from the fixed list, never from users."""
    if layer_id not in LAYER_IDS:
        raise ValueError(f"unknown layer id {layer_id!r}")
    return f"plan_{layer_id}"


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def current_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


@dataclass(frozen=True)
class PlanVersion:
    """One immutable, committed load of a layer."""

    layer: str
    version: int
    label: str
    source_name: str
    source_sha256: str
    loaded_at: str
    loaded_by: str
    status: str
    n_read: int
    n_loaded: int
    n_rejected: int
    crs: str
    crs_guessed: bool
    encoding: str
    encoding_guessed: bool
    report: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    layer: str | None
    version: int | None
    detail: dict[str, Any]


@dataclass
class LoadMeta:
    """What a load knows before it writes: used for the version record and the audit entry."""

    layer: str
    label: str
    source_name: str
    source_sha256: str
    actor: str = field(default_factory=current_actor)


#: The column of a loaded chunk that holds its geometries: EWKB (SRID 4490) of multi-geometries, polygons
#: in the OGC orientation, as Arrow binary.
EWKB_COLUMN = "geometry_ewkb"


def keep_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The default chunk encoder: the store takes the frame as it is."""
    return frame


@dataclass
class FeatureArrays:
    """Features of one plan version as plain arrays, in feature order: what site checks work on (pandas
    would cost more than the geometry on a few dozen features)."""

    geoms: np.ndarray     # shapely geometries, EPSG:4490
    key: np.ndarray       # feature_key
    orig: np.ndarray      # orig_code
    unified: np.ndarray   # ydyh_code
    zone: np.ndarray      # zone_code
    level: np.ndarray
    area: np.ndarray      # area_m2 of the whole feature
    corridor: np.ndarray  # corridor_m (NaN when none)

    COLUMNS = ("feature_key", "orig_code", "ydyh_code", "zone_code", "level", "area_m2", "corridor_m")

    @classmethod
    def from_frame(cls, frame: gpd.GeoDataFrame) -> FeatureArrays:
        def col(name: str) -> np.ndarray:
            return np.array([v if isinstance(v, str) else None for v in frame[name]], dtype=object)
        return cls(np.asarray(frame.geometry.values, dtype=object), col("feature_key"), col("orig_code"),
                   col("ydyh_code"), col("zone_code"), col("level"), frame["area_m2"].to_numpy(dtype=float),
                   frame["corridor_m"].to_numpy(dtype=float))

    def take(self, index: np.ndarray) -> FeatureArrays:
        return FeatureArrays(*(getattr(self, f)[index] for f in ("geoms", "key", "orig", "unified", "zone", "level",
                                                                 "area", "corridor")))


class LoadSession(ABC):
    """Staged features of one load. Nothing is visible until :meth:`commit`."""

    #: Turns a chunk of normalised features into what :meth:`write` takes. It must be picklable:
    #: loads of large files run it in worker processes, next to the checks.
    encoder: Callable[[pd.DataFrame], Any] = staticmethod(keep_frame)

    @abstractmethod
    def write(self, payload: Any) -> None:
        """Stage one encoded chunk of normalised features (FEATURE_COLUMNS minus version, plus EWKB_COLUMN)."""

    def seal(self) -> None:  # noqa: B027 (optional: a store without indexes to build has nothing to do)
        """Called once after the last :meth:`write`, while the load report is still being made (on another
        thread): a store builds its indexes on the staged features here. Nothing is published yet."""

    @abstractmethod
    def commit(self, summary: dict[str, Any]) -> PlanVersion:
        """Assign the next version number, publish the features, write version and audit records."""

    @abstractmethod
    def abort(self, reason: str) -> None:
        """Discard everything staged and write a failed-load audit record."""


class PlanStore(ABC):
    """Versioned plan layers, their metadata and the audit trail, in one place."""

    url: str

    @abstractmethod
    def init(self) -> list[str]:
        """Create or migrate the schema; return the migrations applied."""

    @abstractmethod
    def begin_load(self, meta: LoadMeta, geometry: str) -> LoadSession: ...

    #: The version list as last read, and the stamp it was read under (see :meth:`versions`).
    _versions_stamp: tuple | None = None
    _versions_cache: tuple[PlanVersion, ...] = ()

    def versions(self, layer: str | None = None) -> list[PlanVersion]:
        """The committed versions (of ``layer``), in layer and version order."""
        stamp, rows = self._version_rows(self._versions_stamp)
        if rows is not None:
            self._versions_cache = tuple(version_from_row(r) for r in rows)
            self._versions_stamp = stamp
        return [v for v in self._versions_cache if layer in (None, v.layer)]

    @abstractmethod
    def _version_rows(self, known: tuple | None) -> tuple[tuple, list[dict[str, Any]] | None]:
        """The stamp of mp_plan_versions (versions are only ever added: their count and newest load time), and
        its rows in layer and version order, or None when the stamp is still ``known``."""

    @abstractmethod
    def read_features(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None
                      ) -> gpd.GeoDataFrame: ...

    @abstractmethod
    def features_near(self, versions: dict[str, int], bbox: tuple[float, float, float, float],
                      bboxes: dict[str, tuple[float, float, float, float]] | None = None
                      ) -> dict[str, FeatureArrays]:
        """The features of each ``{layer: version}`` whose bounding boxes meet ``bbox`` (or the layer's own box in
        ``bboxes``): what a site check reads."""

    @abstractmethod
    def audit_log(self, layer: str | None = None) -> list[AuditEntry]: ...

    @abstractmethod
    def audit(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        """Append one entry to the audit trail (web actions, user administration)."""

    @abstractmethod
    def close(self) -> None: ...

    def one_connection(self) -> AbstractContextManager[None]:
        """A block whose store calls on this thread share one database connection (a web request's).

        A no-op where connections cost nothing (the embedded store)."""
        return nullcontext()

    # -- the conflict ledger -------------------------------------------------------------------
    @abstractmethod
    def _ledger(self, patches: gpd.GeoDataFrame | None = None) -> AbstractContextManager[LedgerTransaction]:
        """A transaction over the ledger tables (patches, if given, are staged for ``add_patches``)."""

    @abstractmethod
    def detection_runs(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def latest_run_id(self) -> int | None:
        """The id of the newest detection run, or None."""

    @abstractmethod
    def read_patches(self, run_id: int, bbox: tuple[float, float, float, float] | None = None
                     ) -> gpd.GeoDataFrame: ...

    @abstractmethod
    def conflicts(self, status: str | None = None, rule: str | None = None, conflict_id: str | None = None
                  ) -> list[dict[str, Any]]:
        """Ledger cases, filtered by status, rule or id, in rule and id order."""

    @abstractmethod
    def conflict_events(self, conflict_id: str) -> list[dict[str, Any]]: ...

    def save_detection(self, run: dict[str, Any], patches: gpd.GeoDataFrame) -> dict[str, Any]:
        """Store a detection run with its patches; return the conflicts that are new, unchanged, resolved."""
        from multiplan.store.ledger_ops import prepare_patches, record_run

        prepared = prepare_patches(patches)
        with self._ledger(prepared) as tx:
            return record_run(tx, run, prepared)

    def transition_conflict(self, conflict_id: str, status: str, actor: str, reason: str) -> dict[str, Any]:
        """Move a conflict to ``status`` (allowed moves only), recording who and why."""
        from multiplan.store.ledger_ops import transition

        with self._ledger() as tx:
            return transition(tx, conflict_id, status, actor, reason)

    def add_conflict_opinion(self, conflict_id: str, actor: str, author: str, text: str) -> None:
        """Record an opinion (e.g. of the district government) on a conflict."""
        from multiplan.store.ledger_ops import add_opinion

        with self._ledger() as tx:
            add_opinion(tx, conflict_id, actor, author, text)

    # -- approvals and site checks -----------------------------------------------------------------
    @abstractmethod
    def _records(self, write: bool = True) -> AbstractContextManager[RecordTransaction]:
        """A transaction over the record tables (approvals, their events, site checks and their links)."""

    def select_records(self, table: str, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a record table matching ``where`` (column = value), in insertion order."""
        with self._records(write=False) as tx:
            return tx.select(table, where)

    def version(self, layer: str, number: int | None = None) -> PlanVersion:
        """Version ``number`` of ``layer``; the newest when ``number`` is None."""
        from multiplan.errors import NotFoundError

        if number is not None:  # a version once seen exists for good: versions are never changed or removed
            for v in self._versions_cache:
                if v.layer == layer and v.version == number:
                    return v
        found = self.versions(layer)
        if not found:
            raise NotFoundError("no_versions", layer=layer)
        if number is None:
            return found[-1]
        for v in found:
            if v.version == number:
                return v
        raise NotFoundError("version_not_found", layer=layer, version=number)

    def __enter__(self) -> PlanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the map: vector tiles and pages of features (the web map, the tiles and the OGC API) --------
    #: Columns find_features may look features up by (SQL identifiers come from this list only).
    LOOKUP_COLUMNS = ("feature_no", "feature_key")

    @abstractmethod
    def mvt_tile(self, layer: str, version: int, z: int, x: int, y: int) -> bytes:
        """Tile z/x/y (web mercator) of a plan version as a Mapbox Vector Tile layer named ``layer`` (b"" if
        empty); properties :data:`multiplan.tiles.PLAN_PROPERTIES`, the feature number as feature id."""

    @abstractmethod
    def mvt_patch_tile(self, run_id: int, z: int, x: int, y: int) -> bytes:
        """Tile z/x/y of a detection run's conflict patches (MVT layer ``conflicts``), each with its
        conflict's current status in the ledger."""

    @abstractmethod
    def feature_page(self, layer: str, version: int, bbox: tuple[float, float, float, float] | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[gpd.GeoDataFrame, int]:
        """Features ``offset`` to ``offset + limit`` (in feature order) of those whose geometry intersects
        ``bbox`` (lon/lat), and how many intersect it."""

    @abstractmethod
    def find_features(self, layer: str, version: int, column: str, value: Any) -> gpd.GeoDataFrame:
        """The features of a version whose ``column`` (one of LOOKUP_COLUMNS) equals ``value``."""

    @abstractmethod
    def feature_bounds(self, layer: str, version: int, by: str | None = None
                       ) -> dict[Any, tuple[float, float, float, float]]:
        """Bounds (lon/lat) of a version's features: all of them (key None), or per ``by`` (``xzqdm``)."""

    @abstractmethod
    def change_stamp(self, what: str) -> tuple:
        """What changes whenever the ``conflicts`` ledger or the ``approvals`` (records or site checks) do:
        caches of tiles drawn from them are keyed by it (the query: :func:`change_stamp_sql`)."""


def change_stamp_sql(what: str) -> str:
    """The query of a store's change stamp (one row of counts and newest times)."""
    sql = {"conflicts": "SELECT (SELECT COUNT(*) FROM mp_conflicts), (SELECT MAX(updated_at) FROM mp_conflicts), "
                        "(SELECT MAX(id) FROM mp_detection_runs)",
           "approvals": "SELECT (SELECT COUNT(*) FROM mp_approvals), (SELECT MAX(updated_at) FROM mp_approvals), "
                        "(SELECT COUNT(*) FROM mp_site_checks), (SELECT MAX(id) FROM mp_site_checks)"}
    if what not in sql:
        raise ValueError(f"no change stamp for {what!r}")
    return sql[what]


def check_lookup_column(column: str) -> None:
    """Refuse a lookup column the stores do not offer (it becomes an SQL identifier)."""
    if column not in PlanStore.LOOKUP_COLUMNS:
        raise ValueError(f"cannot look features up by {column!r}")


def check_bounds_grouping(by: str | None) -> None:
    """Refuse a grouping of feature bounds the stores do not offer (it becomes an SQL identifier)."""
    if by not in (None, "xzqdm"):
        raise ValueError(f"cannot group bounds by {by!r}")


def version_from_row(row: dict[str, Any]) -> PlanVersion:
    report = row.get("report_json") or "{}"
    return PlanVersion(
        layer=row["layer"], version=int(row["version"]), label=row["label"] or "",
        source_name=row["source_name"], source_sha256=row["source_sha256"],
        loaded_at=str(row["loaded_at"]), loaded_by=row["loaded_by"], status=row["status"],
        n_read=int(row["n_read"]), n_loaded=int(row["n_loaded"]), n_rejected=int(row["n_rejected"]),
        crs=row["crs"], crs_guessed=bool(row["crs_guessed"]), encoding=row["encoding"],
        encoding_guessed=bool(row["encoding_guessed"]),
        report=json.loads(report) if isinstance(report, str) else report,
    )


def check_schema_version(store: str, found: int | None, supported: int) -> None:
    """Refuse a store whose schema is older (run init) or newer (upgrade multiplan) than this program's."""
    from multiplan.errors import StorageError

    if found is None or found < supported:
        raise StorageError("store_outdated", store=store, found=found or 0, supported=supported)
    if found > supported:
        raise StorageError("store_newer", store=store, found=found, supported=supported)


def audit_from_row(row: dict[str, Any]) -> AuditEntry:
    detail = row["detail"]
    return AuditEntry(int(row["id"]), str(row["at"]), row["actor"], row["action"], row["layer"],
                      None if row["version"] is None else int(row["version"]),
                      json.loads(detail) if isinstance(detail, str) else (detail or {}))


def version_record(meta: LoadMeta, version: int, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "layer": meta.layer, "version": int(version), "label": meta.label, "source_name": meta.source_name,
        "source_sha256": meta.source_sha256, "loaded_at": now_utc(), "loaded_by": meta.actor,
        "status": VERSION_STATUS_COMMITTED, "n_read": int(summary["counts"]["read"]),
        "n_loaded": int(summary["counts"]["loaded"]), "n_rejected": int(summary["counts"]["rejected"]),
        "crs": summary["crs"]["used"], "crs_guessed": int(bool(summary["crs"]["guessed"])),
        "encoding": summary["encoding"]["used"], "encoding_guessed": int(bool(summary["encoding"]["guessed"])),
        "report_json": json.dumps(summary, ensure_ascii=False, sort_keys=True, default=json_default),
    }


def audit_detail(meta: LoadMeta, summary: dict[str, Any]) -> dict[str, Any]:
    return {"source": meta.source_name, "sha256": meta.source_sha256, "label": meta.label,
            "counts": summary["counts"]}


def json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def normalise_read_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Features as both back-ends return them: attrs as dicts, numbers as floats, in feature order."""
    frame = frame.reset_index(drop=True)
    frame["source_attributes"] = [json.loads(a) if isinstance(a, str) else (a or {}) for a in frame["source_attributes"]]
    for name, pg_type, _ in FEATURE_COLUMNS:
        if pg_type == "double precision":
            frame[name] = frame[name].astype("float64")
        elif pg_type == "integer":
            frame[name] = frame[name].astype("int64")
        elif pg_type == "text":
            frame[name] = pd.Series([v if isinstance(v, str) else None for v in frame[name]], dtype=object,
                                    index=frame.index)
    return frame


#: Columns of stored conflict patches besides the geometry (name, PostGIS type, SQLite type).
PATCH_STORE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run_id", "integer", "INTEGER"), ("conflict_id", "text", "TEXT"), ("rule", "text", "TEXT"),
    ("rule_version", "integer", "INTEGER"), ("severity", "text", "TEXT"),
    ("layer_a", "text", "TEXT"), ("version_a", "integer", "INTEGER"), ("feature_a", "text", "TEXT"),
    ("class_a", "text", "TEXT"), ("orig_a", "text", "TEXT"), ("zone_a", "text", "TEXT"),
    ("layer_b", "text", "TEXT"), ("version_b", "integer", "INTEGER"), ("feature_b", "text", "TEXT"),
    ("class_b", "text", "TEXT"), ("orig_b", "text", "TEXT"), ("zone_b", "text", "TEXT"),
    ("xzqdm", "text", "TEXT"), ("area_m2", "double precision", "REAL"), ("area_ha", "double precision", "REAL"),
    ("area_mu", "double precision", "REAL"), ("length_inside_m", "double precision", "REAL"),
    ("crossings", "integer", "INTEGER"), ("give_way", "text", "TEXT"), ("suggestion_zh", "text", "TEXT"),
    ("suggestion_en", "text", "TEXT"),
)
#: The ledger: one row per conflict (case), updated as it is worked on; its events are append-only.
CASE_COLUMNS = ("conflict_id", "rule", "severity", "layer_a", "version_a", "feature_a", "layer_b", "version_b",
                "feature_b", "xzqdm", "status", "area_m2", "give_way", "suggestion_zh", "suggestion_en",
                "first_run", "last_run", "updated_at")
EVENT_COLUMNS = ("conflict_id", "at", "actor", "kind", "from_status", "to_status", "run_id", "author", "text")


class LedgerTransaction(ABC):
    """The writes of one ledger change, applied together or not at all."""

    @abstractmethod
    def add_run(self, record: dict[str, Any]) -> int: ...

    @abstractmethod
    def add_patches(self, run_id: int, patches: gpd.GeoDataFrame) -> None: ...

    @abstractmethod
    def cases(self, rules: list[str] | None = None, conflict_id: str | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def put_case(self, row: dict[str, Any], new: bool) -> None: ...

    @abstractmethod
    def add_event(self, row: dict[str, Any]) -> None: ...


# -- approvals and site checks: plain record tables, the same in both stores ---------------------
#: Columns per record table (name, PostGIS type, SQLite type). ``id`` columns are generated; tables named in
#: APPEND_ONLY refuse updates and deletes.
RECORD_TABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "mp_approvals": (
        ("code", "text", "TEXT"), ("name", "text", "TEXT"), ("applicant", "text", "TEXT"), ("stage", "text", "TEXT"),
        ("status", "text", "TEXT"), ("applied_on", "text", "TEXT"), ("decided_on", "text", "TEXT"),
        ("officer", "text", "TEXT"), ("notes", "text", "TEXT"), ("site_wkb", "bytea", "BLOB"),
        ("created_at", "text", "TEXT"), ("updated_at", "text", "TEXT"), ("source", "text", "TEXT")),
    "mp_approval_events": (
        ("id", "bigint", "INTEGER"), ("code", "text", "TEXT"), ("at", "text", "TEXT"), ("actor", "text", "TEXT"),
        ("kind", "text", "TEXT"), ("from_status", "text", "TEXT"), ("to_status", "text", "TEXT"),
        ("reason", "text", "TEXT"), ("officer", "text", "TEXT"), ("check_id", "bigint", "INTEGER"),
        ("detail", "text", "TEXT")),
    "mp_site_checks": (
        ("id", "bigint", "INTEGER"), ("approval_code", "text", "TEXT"), ("checked_at", "text", "TEXT"),
        ("actor", "text", "TEXT"), ("verdict", "text", "TEXT"), ("content_sha256", "text", "TEXT"),
        ("site_area_m2", "double precision", "REAL"), ("as_of", "text", "TEXT"), ("site_wkb", "bytea", "BLOB"),
        ("report_json", "text", "TEXT")),
    "mp_check_conflicts": (("check_id", "bigint", "INTEGER"), ("conflict_id", "text", "TEXT")),
    "mp_users": (
        ("username", "text", "TEXT"), ("display_name", "text", "TEXT"), ("password_hash", "text", "TEXT"),
        ("role", "text", "TEXT"), ("active", "bigint", "INTEGER"), ("created_at", "text", "TEXT"),
        ("updated_at", "text", "TEXT")),
    "mp_api_tokens": (
        ("id", "bigint", "INTEGER"), ("token_sha256", "text", "TEXT"), ("username", "text", "TEXT"),
        ("label", "text", "TEXT"), ("created_at", "text", "TEXT"), ("revoked_at", "text", "TEXT")),
}
#: Which schema migration creates which record tables.
RECORD_MIGRATIONS = {3: ("mp_approvals", "mp_approval_events", "mp_site_checks", "mp_check_conflicts"),
                     4: ("mp_users", "mp_api_tokens")}
RECORD_KEYS = {"mp_approvals": "code", "mp_approval_events": "id", "mp_site_checks": "id",
               "mp_check_conflicts": None, "mp_users": "username", "mp_api_tokens": "id"}
APPEND_ONLY = {"mp_approval_events": "append-only", "mp_site_checks": "immutable",
               "mp_check_conflicts": "immutable"}
RECORD_INDEXES = (("mp_approval_events", "code"), ("mp_site_checks", "approval_code"),
                  ("mp_check_conflicts", "check_id"), ("mp_check_conflicts", "conflict_id"),
                  ("mp_api_tokens", "token_sha256"))


def record_columns(table: str) -> tuple[str, ...]:
    """The columns of a record table; table names come from RECORD_TABLES, never from users."""
    if table not in RECORD_TABLES:
        raise ValueError(f"unknown record table {table!r}")
    return tuple(c[0] for c in RECORD_TABLES[table])


class RecordTransaction(ABC):
    """Row writes to the record tables, applied together or not at all. Column names are checked."""

    @abstractmethod
    def insert(self, table: str, row: dict[str, Any]) -> int | None:
        """Insert a row; return its generated id when the table has one."""

    @abstractmethod
    def update(self, table: str, key: Any, values: dict[str, Any]) -> None: ...

    @abstractmethod
    def select(self, table: str, where: dict[str, Any] | None = None, lock: bool = False) -> list[dict[str, Any]]: ...


def checked_columns(table: str, names: Any) -> list[str]:
    allowed = set(record_columns(table))
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown columns {bad} for {table}")
    return list(names)
