"""OGC API – Features (Part 1: Core, GeoJSON, OpenAPI 3.0) for GIS clients such as QGIS (Layer > Add Layer >
Add WFS / OGC API – Features Layer, URL ``https://HOST/ogc``).

Collections: each plan layer's current version (id = the layer id; feature id = the feature number), the
latest detection run's conflict patches (``conflicts``; feature id = conflict id), the approval sites
(``approvals``; feature id = project code) and the integrated one map of the current versions (``onemap``;
feature id = face number), which is built once per set of versions and run and kept in memory.
Geometries are GeoJSON in CRS84: stored EPSG:4490 (CGCS2000) lon/lat coordinates are given as they are.
Requests need a session, ``Authorization: Bearer TOKEN`` or HTTP Basic (web.access).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from flask import Blueprint, Response, current_app, request, url_for

from multiplan import tiles as engine
from multiplan.specs import LAYER_IDS, load_layer_specs
from web.access import ANY_USER, requires
from web.i18n import language, t
from web.store import get_store
from web.tiles import latest_run
from web.viewer import plain

bp = Blueprint("ogc", __name__, url_prefix="/ogc")

STRINGS: dict[str, tuple[str, str]] = {
    "ogc_title": ("多规合一一张图要素服务", "Multi-plan integration: the one map as features"),
    "ogc_description": ("海南省各类规划现行版本、冲突图斑、审批项目用地与一张图(OGC API – Features)",
                        "Current versions of every Hainan plan, conflict patches, approval sites and the one map "
                        "(OGC API – Features)"),
    "ogc_plan_description": ("{title}现行版本(第 {version} 版)", "{title}, current version ({version})"),
    "ogc_conflicts": ("冲突图斑", "Conflict patches"),
    "ogc_conflicts_description": ("最近一次冲突检测(批次 {run})的冲突图斑及其台账状态",
                                  "Conflict patches of the latest detection run ({run}) with their ledger status"),
    "ogc_approvals": ("审批项目用地", "Approval sites"),
    "ogc_approvals_description": ("审批项目的用地范围(红线)及最近一次用地核查结论",
                                  "Sites of the approval records with their latest site-check verdict"),
    "ogc_onemap": ("一张图", "One map"),
    "ogc_onemap_description": ("各面状规划现行版本叠加后的图斑,含各规划分类与冲突",
                               "Faces of the overlay of every polygon plan's current version, with each plan's "
                               "classes and the conflicts"),
}

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = ("http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30")
JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
#: Query parameters the items requests take (``lang`` is the app's language switch).
ITEM_PARAMETERS = {"f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "lang"}
PLAN_PROPERTIES = ("feature_no", "feature_key", "orig_code", "ydyh_code", "ydyh_match", "zone_code", "xzqdm", "level",
                   "corridor_m", "area_m2", "length_m")
_ONEMAP_LOCK = threading.Lock()


class OgcError(Exception):
    """A request the API refuses, with its HTTP status and OGC exception code."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


@bp.errorhandler(OgcError)
def _refused(exc: OgcError) -> Response:
    body = {"code": exc.code, "description": exc.description, "error": exc.code, "message": exc.description,
            "status": exc.status}
    return Response(json.dumps(body, ensure_ascii=False), status=exc.status, mimetype=JSON)


def _json(data: Any, mimetype: str = JSON) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, default=_default), mimetype=mimetype)


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _link(endpoint: str, rel: str, mimetype: str, title: str | None = None, **values: Any) -> dict[str, str]:
    link = {"href": url_for(endpoint, _external=True, **values), "rel": rel, "type": mimetype}
    if title:
        link["title"] = title
    return link


# -- collections ------------------------------------------------------------------------------------
@dataclass
class Collection:
    """One collection: its description and how to page its features (as GeoJSON feature dicts)."""

    id: str
    title: str
    description: str
    extent: Callable[[], tuple[float, float, float, float] | None]
    page: Callable[[tuple[float, float, float, float] | None, int, int], tuple[list[dict[str, Any]], int]]
    item: Callable[[str], dict[str, Any] | None]


def _geometry(geom: Any) -> Any:
    return None if geom is None or shapely.is_empty(geom) else json.loads(shapely.to_geojson(geom))


def _feature(fid: Any, geom: Any, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": plain(fid), "geometry": _geometry(geom),
            "properties": {k: plain(v) for k, v in properties.items()}}


def _plan_features(frame: gpd.GeoDataFrame, version: int) -> list[dict[str, Any]]:
    out = []
    for row, geom in zip(frame.to_dict("records"), frame.geometry.values, strict=True):
        properties = {k: row[k] for k in PLAN_PROPERTIES}
        properties["version"] = version
        properties["source_attributes"] = row.get("source_attributes") or {}
        out.append(_feature(int(row["feature_no"]), geom, properties))
    return out


def _plan_collection(store: Any, layer: str) -> Collection | None:
    found = store.versions(layer)
    if not found:
        return None
    v = found[-1]
    spec = load_layer_specs()[layer]
    lang = language()

    def extent() -> tuple[float, float, float, float] | None:
        from web.tiles import tile_cache

        bounds = tile_cache().get_or_build(("ogc-extent", store.url, layer, v.version, v.loaded_at),
                                           lambda: store.feature_bounds(layer, v.version))
        return bounds.get(None)

    def page(bbox: Any, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        frame, matched = store.feature_page(layer, v.version, bbox, limit, offset)
        return _plan_features(frame, v.version), matched

    def item(fid: str) -> dict[str, Any] | None:
        if not fid.isdigit():
            return None
        frame = store.find_features(layer, v.version, "feature_no", int(fid))
        return _plan_features(frame, v.version)[0] if len(frame) else None

    return Collection(layer, spec.title(lang), t("ogc_plan_description", title=spec.title(lang), version=v.version),
                      extent, page, item)


def _memory_collection(cid: str, title: str, description: str, build: Callable[[], engine.MemoryLayer],
                       id_column: str | None, decorate: Callable[[list[dict[str, Any]]], None] | None = None
                       ) -> Collection:
    """A collection served from a memory layer; ``id_column`` None numbers the features from 1."""
    def features(mem: engine.MemoryLayer, positions: np.ndarray) -> list[dict[str, Any]]:
        frame = mem.frame
        columns = [c for c in frame.columns if c != frame.geometry.name]
        rows = frame.iloc[positions]
        out = [_feature(row[id_column] if id_column else int(pos) + 1, geom, {c: row[c] for c in columns})
               for pos, row, geom in zip(positions, rows.to_dict("records"), rows.geometry.values, strict=True)]
        if decorate:
            decorate(out)
        return out

    def extent() -> tuple[float, float, float, float] | None:
        return build().bounds().get(None)

    def page(bbox: Any, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        mem = build()
        found = mem.matching(bbox)
        return features(mem, found[offset: offset + limit]), len(found)

    def item(fid: str) -> dict[str, Any] | None:
        mem = build()
        if id_column is None:
            if not fid.isdigit() or not 1 <= int(fid) <= len(mem):
                return None
            return features(mem, np.array([int(fid) - 1]))[0]
        hits = np.flatnonzero(mem.frame[id_column].to_numpy(dtype=object) == fid)
        return features(mem, hits[:1])[0] if len(hits) else None

    return Collection(cid, title, description, extent, page, item)


def _conflicts_collection(store: Any) -> Collection | None:
    run = latest_run(store)
    if run is None:
        return None

    def build() -> engine.MemoryLayer:
        return engine.SOURCES.get_or_build(("ogc-patches", store.url, run["id"], run["at"]),
                                           lambda: engine.MemoryLayer(store.read_patches(int(run["id"]))))

    def with_status(features: list[dict[str, Any]]) -> None:
        status = {c["conflict_id"]: c["status"] for c in store.conflicts()} if features else {}
        for f in features:
            f["properties"]["status"] = status.get(f["id"])

    return _memory_collection("conflicts", t("ogc_conflicts"), t("ogc_conflicts_description", run=run["id"]), build,
                              "conflict_id", with_status)


def _approvals_collection(store: Any) -> Collection:
    return _memory_collection("approvals", t("ogc_approvals"), t("ogc_approvals_description"),
                              lambda: engine.approvals_layer(store), "code")


def one_map(store: Any) -> engine.MemoryLayer:
    """The one map of the polygon plans' current versions (with the latest run's patches), built once per
    set of versions and run, and kept on the app."""
    from multiplan.onemap import build_one_map

    specs = load_layer_specs()
    versions = {lid: store.versions(lid)[-1] for lid in LAYER_IDS
                if specs[lid].geometry == "polygon" and store.versions(lid)}
    run = latest_run(store)
    key = (store.url, tuple((lid, v.version, v.loaded_at) for lid, v in versions.items()),
           (run["id"], run["at"]) if run else None)
    cache = current_app.extensions.setdefault("multiplan_onemap", engine.LRUCache(2))
    found = cache.get(key)
    if found is not None:
        return found
    with _ONEMAP_LOCK:  # expensive: one build at a time, and none twice
        found = cache.get(key)
        if found is None:
            frames = {lid: store.read_features(lid, v.version) for lid, v in versions.items()}
            patches = store.read_patches(int(run["id"])) if run else None
            found = engine.MemoryLayer(build_one_map(frames, patches))
            cache.put(key, found)
    return found


def collections(store: Any) -> dict[str, Collection]:
    """Every collection the store can serve now, in a fixed order."""
    specs = load_layer_specs()
    out: dict[str, Collection] = {}
    for layer in LAYER_IDS:
        found = _plan_collection(store, layer)
        if found:
            out[layer] = found
    conflicts = _conflicts_collection(store)
    if conflicts:
        out["conflicts"] = conflicts
    out["approvals"] = _approvals_collection(store)
    if any(specs[lid].geometry == "polygon" for lid in out if lid in specs):
        out["onemap"] = _memory_collection("onemap", t("ogc_onemap"), t("ogc_onemap_description"),
                                           lambda: one_map(store), None)
    return out


def _collection_or_404(cid: str) -> Collection:
    found = collections(get_store()).get(cid)
    if found is None:
        raise OgcError(404, "NotFound", f"no collection {cid!r}; see {url_for('ogc.collections_', _external=True)}")
    return found


def _describe(c: Collection) -> dict[str, Any]:
    bbox = c.extent()
    return {
        "id": c.id, "title": c.title, "description": c.description, "itemType": "feature", "crs": [CRS84],
        "extent": {"spatial": {"bbox": [list(bbox)] if bbox else [[-180.0, -90.0, 180.0, 90.0]], "crs": CRS84}},
        "links": [_link("ogc.collection", "self", JSON, c.title, collection_id=c.id),
                  _link("ogc.items", "items", GEOJSON, c.title, collection_id=c.id)],
    }


# -- request parameters ------------------------------------------------------------------------------------
def _format() -> None:
    f = request.args.get("f")
    if f not in (None, "", "json", "geojson"):
        raise OgcError(400, "InvalidParameterValue", f"f={f!r}: only f=json (GeoJSON) is offered")


def _int(name: str, default: int, low: int, high: int | None = None) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OgcError(400, "InvalidParameterValue", f"{name}={raw!r}: expected a whole number") from None
    if value < low:
        raise OgcError(400, "InvalidParameterValue", f"{name}={raw!r}: expected at least {low}")
    return min(value, high) if high is not None else value


def _bbox() -> tuple[float, float, float, float] | None:
    raw = request.args.get("bbox")
    for name in ("bbox-crs", "crs"):  # OGC API – Features Part 2 clients may name the one CRS offered
        crs = request.args.get(name)
        if crs not in (None, "", CRS84):
            raise OgcError(400, "InvalidParameterValue", f"{name}={crs!r}: only {CRS84} is offered")
    if raw in (None, ""):
        return None
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) == 6:  # minx, miny, minz, maxx, maxy, maxz
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(np.isfinite(numbers)) or numbers[0] > numbers[2] or numbers[1] > numbers[3] \
            or numbers[1] < -90 or numbers[3] > 90:
        raise OgcError(400, "InvalidParameterValue",
                       f"bbox={raw!r}: expected minLon,minLat,maxLon,maxLat in degrees (CRS84), min before max")
    return (numbers[0], numbers[1], numbers[2], numbers[3])


# -- views ----------------------------------------------------------------------------------------------
@bp.route("/")
@bp.route("")
@requires(*ANY_USER)
def landing() -> Response:
    return _json({
        "title": t("ogc_title"), "description": t("ogc_description"),
        "links": [_link("ogc.landing", "self", JSON, t("ogc_title")),
                  _link("ogc.openapi", "service-desc", OPENAPI, "OpenAPI 3.0"),
                  _link("ogc.conformance", "conformance", JSON, "Conformance"),
                  _link("ogc.collections_", "data", JSON, "Collections")],
    })


@bp.route("/conformance")
@requires(*ANY_USER)
def conformance() -> Response:
    return _json({"conformsTo": list(CONFORMANCE)})


@bp.route("/collections")
@requires(*ANY_USER)
def collections_() -> Response:
    _format()
    return _json({"links": [_link("ogc.collections_", "self", JSON)],
                  "collections": [_describe(c) for c in collections(get_store()).values()]})


@bp.route("/collections/<collection_id>")
@requires(*ANY_USER)
def collection(collection_id: str) -> Response:
    _format()
    return _json(_describe(_collection_or_404(collection_id)))


@bp.route("/collections/<collection_id>/items")
@requires(*ANY_USER)
def items(collection_id: str) -> Response:
    unknown = sorted(set(request.args) - ITEM_PARAMETERS)
    if unknown:
        raise OgcError(400, "InvalidParameterValue",
                       f"unknown query parameters {unknown}; known: {sorted(ITEM_PARAMETERS - {'lang'})}")
    _format()
    c = _collection_or_404(collection_id)
    limit = _int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int("offset", 0, 0)
    bbox = _bbox()
    features, matched = c.page(bbox, limit, offset)
    kept = {k: v for k, v in request.args.items() if k in ("bbox", "bbox-crs", "crs", "datetime", "f")}
    links = [_link("ogc.items", "self", GEOJSON, collection_id=c.id, limit=limit, offset=offset, **kept),
             _link("ogc.collection", "collection", JSON, c.title, collection_id=c.id)]
    if offset + len(features) < matched:
        links.append(_link("ogc.items", "next", GEOJSON, collection_id=c.id, limit=limit, offset=offset + limit,
                           **kept))
    if offset > 0:
        links.append(_link("ogc.items", "prev", GEOJSON, collection_id=c.id, limit=limit,
                           offset=max(0, offset - limit), **kept))
    response = _json({"type": "FeatureCollection", "features": features, "numberMatched": matched,
                      "numberReturned": len(features),
                      "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                      "links": links}, GEOJSON)
    response.headers["Content-Crs"] = f"<{CRS84}>"
    return response


@bp.route("/collections/<collection_id>/items/<path:feature_id>")
@requires(*ANY_USER)
def item(collection_id: str, feature_id: str) -> Response:
    _format()
    c = _collection_or_404(collection_id)
    found = c.item(feature_id)
    if found is None:
        raise OgcError(404, "NotFound", f"no feature {feature_id!r} in collection {collection_id!r}")
    found["links"] = [_link("ogc.item", "self", GEOJSON, collection_id=c.id, feature_id=feature_id),
                      _link("ogc.collection", "collection", JSON, c.title, collection_id=c.id)]
    response = _json(found, GEOJSON)
    response.headers["Content-Crs"] = f"<{CRS84}>"
    return response


@bp.route("/api")
@requires(*ANY_USER)
def openapi() -> Response:
    """The OpenAPI 3.0 description of this API (the ``service-desc`` of the landing page)."""
    return _json(openapi_document(), OPENAPI)


def openapi_document() -> dict[str, Any]:
    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/parameters/{name}"}

    def ok(mimetype: str, description: str) -> dict[str, Any]:
        return {"200": {"description": description, "content": {mimetype: {"schema": {"type": "object"}}}},
                "401": {"description": "log in, or send a Bearer token or HTTP Basic credentials"}}

    collection_id = {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": t("ogc_title"), "description": t("ogc_description"), "version": "1.0.0"},
        "servers": [{"url": url_for("ogc.landing", _external=True)}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/": {"get": {"operationId": "getLandingPage", "summary": "landing page", "responses": ok(JSON, "links")}},
            "/conformance": {"get": {"operationId": "getConformance", "summary": "conformance classes",
                                     "responses": ok(JSON, "conformsTo")}},
            "/collections": {"get": {"operationId": "getCollections", "summary": "the collections",
                                     "parameters": [ref("f")], "responses": ok(JSON, "collections")}},
            "/collections/{collectionId}": {"get": {
                "operationId": "describeCollection", "summary": "one collection",
                "parameters": [collection_id, ref("f")], "responses": ok(JSON, "the collection")}},
            "/collections/{collectionId}/items": {"get": {
                "operationId": "getFeatures", "summary": "features of a collection",
                "parameters": [collection_id, ref("bbox"), ref("limit"), ref("offset"), ref("datetime"), ref("f")],
                "responses": {**ok(GEOJSON, "a GeoJSON FeatureCollection"),
                              "400": {"description": "a parameter is invalid"}}}},
            "/collections/{collectionId}/items/{featureId}": {"get": {
                "operationId": "getFeature", "summary": "one feature",
                "parameters": [collection_id, {"name": "featureId", "in": "path", "required": True,
                                               "schema": {"type": "string"}}, ref("f")],
                "responses": {**ok(GEOJSON, "a GeoJSON Feature"), "404": {"description": "no such feature"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
            "parameters": {
                "bbox": {"name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
                         "description": "minLon,minLat,maxLon,maxLat (CRS84)",
                         "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
                "limit": {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                     "default": DEFAULT_LIMIT}},
                "offset": {"name": "offset", "in": "query", "required": False,
                           "schema": {"type": "integer", "minimum": 0, "default": 0}},
                "datetime": {"name": "datetime", "in": "query", "required": False,
                             "description": "accepted; the features carry no time, so nothing is filtered",
                             "schema": {"type": "string"}},
                "f": {"name": "f", "in": "query", "required": False,
                      "schema": {"type": "string", "enum": ["json", "geojson"], "default": "json"}},
            },
        },
    }
