"""Vector tiles for the one-map viewer and for GIS clients (QGIS: Layer > Add Layer > Add Vector Tile Layer).

``/tiles/{layer}/{version}/{z}/{x}/{y}.pbf`` is a Mapbox Vector Tile in the web-mercator XYZ grid. ``layer``
is a plan layer id (``version``: its version number), ``conflicts`` (``version``: a detection run id) or
``approvals`` (``version``: 0). ``/tiles/{layer}/current/{z}/{x}/{y}.pbf`` redirects to the current version,
so one URL template keeps following new loads. Tiles with no feature are ``204 No Content``.

Encoded tiles are kept in an LRU of ``TILE_CACHE_SIZE`` entries per app. Plan versions and runs never
change, so their tiles are cached by version for good (and sent ``immutable``); conflict statuses and
approvals do change, so their tiles are keyed by a stamp of the ledger or of the approval records too.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, request, url_for

from multiplan import tiles as engine
from multiplan.specs import LAYER_IDS, load_layer_specs
from web.access import ANY_USER, requires
from web.i18n import language
from web.store import get_store

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
#: Plan versions never change: their tiles may be kept by any cache for a day without asking again.
IMMUTABLE = "private, max-age=86400, immutable"
#: Conflict statuses and approvals change: their tiles are revalidated (ETag) on every use.
REVALIDATE = "private, no-cache"
EXTRA_LAYERS = ("conflicts", "approvals")
_CACHE_LOCK = threading.Lock()


def tile_cache() -> engine.LRUCache:
    """The app's cache of encoded tiles (made on first use, ``TILE_CACHE_SIZE`` entries)."""
    cache = current_app.extensions.get("multiplan_tile_cache")
    if cache is None:
        with _CACHE_LOCK:
            cache = current_app.extensions.setdefault(
                "multiplan_tile_cache", engine.LRUCache(int(current_app.config.get("TILE_CACHE_SIZE", 4096))))
    return cache


def latest_run(store: Any) -> dict[str, Any] | None:
    runs = store.detection_runs()
    return runs[-1] if runs else None


def current_version(store: Any, layer: str) -> int | None:
    """The version ``current`` stands for: a plan's newest version, the latest run, or 0 for approvals."""
    if layer == "approvals":
        return 0
    if layer == "conflicts":
        run = latest_run(store)
        return int(run["id"]) if run else None
    if layer not in LAYER_IDS:
        return None
    found = store.versions(layer)
    return found[-1].version if found else None


def url_template(layer: str, version: int | str = "current") -> str:
    """The XYZ URL template of a layer, as QGIS and Leaflet take it (``{z}/{x}/{y}`` left in place)."""
    base = url_for("tiles.tile_current", layer=layer, z=0, x=0, y=0, _external=True)
    return base.replace("/current/0/0/0.pbf", f"/{version}/{{z}}/{{x}}/{{y}}.pbf")


def _known_layer(layer: str) -> None:
    # layer ids are checked against the fixed list before anything reaches SQL
    if layer not in LAYER_IDS and layer not in EXTRA_LAYERS:
        abort(404)


def _tile_bytes(store: Any, layer: str, version: int, z: int, x: int, y: int) -> tuple[bytes, str]:
    """The encoded tile and its Cache-Control; 404 for a version or run that does not exist."""
    cache = tile_cache()
    if layer == "approvals":
        if version != 0:
            abort(404)
        key: tuple = (store.url, layer, store.change_stamp("approvals"), z, x, y)
        policy = REVALIDATE
        render = lambda: engine.approvals_tile(store, z, x, y)  # noqa: E731
    elif layer == "conflicts":
        run = next((r for r in store.detection_runs() if int(r["id"]) == version), None)
        if run is None:
            abort(404)
        key = (store.url, layer, version, run["at"], store.change_stamp("conflicts"), z, x, y)
        policy = REVALIDATE
        render = lambda: store.mvt_patch_tile(version, z, x, y)  # noqa: E731
    else:
        found = store.version(layer, version)  # NotFoundError (404) for a version that does not exist
        key = (store.url, layer, version, found.loaded_at, found.source_sha256, z, x, y)
        policy = IMMUTABLE
        render = lambda: store.mvt_tile(layer, version, z, x, y)  # noqa: E731
    return cache.get_or_build(key, render), policy


@bp.route("/<layer>/<int:version>/<int:z>/<int:x>/<int:y>.pbf")
@requires(*ANY_USER)
def tile(layer: str, version: int, z: int, x: int, y: int) -> Response:
    _known_layer(layer)
    try:
        engine.check_tile(z, x, y)
    except ValueError:
        abort(404)
    data, policy = _tile_bytes(get_store(), layer, version, z, x, y)
    response = Response(data, status=200 if data else 204, mimetype=MVT_MIMETYPE)
    response.headers["Cache-Control"] = policy
    if data:
        response.add_etag()
        response.make_conditional(request)
    return response


@bp.route("/<layer>/current/<int:z>/<int:x>/<int:y>.pbf")
@requires(*ANY_USER)
def tile_current(layer: str, z: int, x: int, y: int) -> Response:
    _known_layer(layer)
    version = current_version(get_store(), layer)
    if version is None:
        abort(404)
    response = redirect(url_for("tiles.tile", layer=layer, version=version, z=z, x=x, y=y), 302)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/")
@requires(*ANY_USER)
def index() -> Response:
    """The tile layers with their current versions and URL templates (for QGIS and scripts)."""
    store = get_store()
    specs = load_layer_specs()
    lang = language()
    layers = []
    for layer in (*LAYER_IDS, *EXTRA_LAYERS):
        version = current_version(store, layer)
        if version is None:
            continue
        spec = specs.get(layer)
        layers.append({
            "id": layer, "title": spec.title(lang) if spec else layer, "current_version": version,
            "url_template": url_template(layer), "versioned_url_template": url_template(layer, version),
            "properties": list({"conflicts": engine.CONFLICT_PROPERTIES, "approvals": engine.APPROVAL_PROPERTIES}
                               .get(layer, engine.PLAN_PROPERTIES)),
        })
    return jsonify({"format": "Mapbox Vector Tile (pbf)", "crs": "EPSG:3857", "extent": engine.EXTENT,
                    "buffer": engine.BUFFER, "minzoom": 0, "maxzoom": engine.MAX_ZOOM, "empty_tile_status": 204,
                    "layers": layers})
