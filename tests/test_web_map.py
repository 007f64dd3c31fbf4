"""The map: vector tiles, the one-map viewer and its popup data, and the OGC API – Features, on both stores."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlparse

import geopandas as gpd
import mapbox_vector_tile
import pytest
import shapely

from multiplan import approvals as approval_ops
from multiplan import tiles as engine
from multiplan import users
from multiplan.specs import LAYER_IDS
from tests.conftest import WEB_PASSWORD

MVT = "application/vnd.mapbox-vector-tile"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def store_of(app):
    return app.extensions["multiplan_store"]


def current(store, layer):
    return store.versions(layer)[-1].version


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data) if data else {}


def tile_of(point: shapely.Point, z: int) -> tuple[int, int, int]:
    return (z, *engine.lonlat_to_tile(point.x, point.y, z))


def features_meeting(frame: gpd.GeoDataFrame, bbox) -> gpd.GeoDataFrame:
    return frame[shapely.intersects(frame.geometry.values, shapely.box(*bbox))]


# -- vector tiles ---------------------------------------------------------------------------------------
def test_a_plan_tile_holds_the_features_of_its_area_with_their_classes(web_app, client_as):
    store = store_of(web_app)
    version = current(store, "overall")
    frame = store.read_features("overall", version)
    feature = frame.iloc[len(frame) // 2]
    z, x, y = tile_of(feature.geometry.centroid, 14)
    response = client_as("viewer").get(f"/tiles/overall/{version}/{z}/{x}/{y}.pbf")
    assert response.status_code == 200 and response.mimetype == MVT
    assert response.headers["Cache-Control"] == "private, max-age=86400, immutable"
    tile = decode(response.data)
    assert list(tile) == ["overall"] and tile["overall"]["extent"] == 4096
    found = {f["properties"]["feature_key"]: f for f in tile["overall"]["features"]}
    assert feature["feature_key"] in found
    mine = found[feature["feature_key"]]
    assert mine["id"] == feature["feature_no"]
    assert mine["properties"] == {k: feature[k] for k in engine.PLAN_PROPERTIES if feature[k] is not None}
    # nothing from outside the buffered tile; everything that covers a visible part of the tile itself
    assert set(found) <= set(features_meeting(frame, engine.tile_lonlat_bounds(z, x, y, buffered=True))["feature_key"])
    inner = shapely.box(*engine.tile_lonlat_bounds(z, x, y))
    visible = frame[shapely.area(shapely.intersection(frame.geometry.values, inner)) > 1e-4 * inner.area]
    assert set(visible["feature_key"]) <= set(found)
    for f in tile["overall"]["features"]:  # grid coordinates, inside the tile plus its buffer
        coords = shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
        assert coords.min() >= -engine.BUFFER and coords.max() <= engine.EXTENT + engine.BUFFER


def test_network_tiles_carry_lines(web_app, client_as):
    store = store_of(web_app)
    version = current(store, "road")
    road = store.read_features("road", version).iloc[0]
    z, x, y = tile_of(road.geometry.interpolate(0.5, normalized=True), 13)
    tile = decode(client_as("viewer").get(f"/tiles/road/{version}/{z}/{x}/{y}.pbf").data)
    lines = {f["properties"]["feature_key"]: f for f in tile["road"]["features"]}
    assert "LineString" in lines[road["feature_key"]]["geometry"]["type"]
    assert lines[road["feature_key"]]["properties"]["level"] == road["level"]


def test_conflict_and_approval_tiles_carry_status_and_verdict(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    run = store.detection_runs()[-1]["id"]
    patch = store.read_patches(run).iloc[0]
    z, x, y = tile_of(patch.geometry.representative_point(), 15)
    response = client.get(f"/tiles/conflicts/{run}/{z}/{x}/{y}.pbf")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-cache"
    found = {f["properties"]["conflict_id"]: f["properties"] for f in decode(response.data)["conflicts"]["features"]}
    status = {c["conflict_id"]: c["status"] for c in store.conflicts()}
    assert found[patch["conflict_id"]] == {"conflict_id": patch["conflict_id"], "rule": patch["rule"],
                                           "severity": patch["severity"], "status": status[patch["conflict_id"]]}
    record = next(r for r in approval_ops.list_approvals(store) if r["site"] is not None and r["latest_verdict"])
    z, x, y = tile_of(record["site"].representative_point(), 15)
    sites = decode(client.get(f"/tiles/approvals/0/{z}/{x}/{y}.pbf").data)["approvals"]["features"]
    assert {"code": record["code"], "name": record["name"], "status": record["status"],
            "latest_verdict": record["latest_verdict"]} in [f["properties"] for f in sites]
    assert client.get(f"/tiles/approvals/1/{z}/{x}/{y}.pbf").status_code == 404  # approvals have version 0 only


def test_current_redirects_to_the_current_version_and_the_cache_answers_the_same_bytes(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    version = current(store, "overall")
    z, x, y = tile_of(store.read_features("overall", version).geometry.iloc[0].centroid, 13)
    moved = client.get(f"/tiles/overall/current/{z}/{x}/{y}.pbf")
    assert moved.status_code == 302
    assert urlparse(moved.headers["Location"]).path == f"/tiles/overall/{version}/{z}/{x}/{y}.pbf"
    run = store.detection_runs()[-1]["id"]
    assert urlparse(client.get("/tiles/conflicts/current/1/1/1.pbf").headers["Location"]).path == \
        f"/tiles/conflicts/{run}/1/1/1.pbf"
    assert urlparse(client.get("/tiles/approvals/current/1/1/1.pbf").headers["Location"]).path == \
        "/tiles/approvals/0/1/1/1.pbf"
    first = client.get(moved.headers["Location"])
    cache = web_app.extensions["multiplan_tile_cache"]
    hits = cache.hits
    second = client.get(moved.headers["Location"])
    assert cache.hits == hits + 1 and second.data == first.data and len(first.data) > 0
    assert second.headers["ETag"] == first.headers["ETag"]
    assert client.get(moved.headers["Location"], headers={"If-None-Match": first.headers["ETag"]}).status_code == 304


def test_an_empty_tile_is_204_and_bad_tiles_are_404_not_sql(client_as):
    client = client_as("viewer")
    empty = client.get("/tiles/overall/1/14/8192/8192.pbf")  # the Gulf of Guinea
    assert empty.status_code == 204 and empty.data == b""
    for path in ("/tiles/nope/1/1/1/1.pbf", "/tiles/plan_overall/1/1/1/1.pbf",
                 "/tiles/overall%27%3B%20DROP%20TABLE%20plan_overall%3B--/1/1/1/1.pbf",
                 "/tiles/mp_users/current/1/1/1.pbf", "/tiles/overall/999/1/1/1.pbf", "/tiles/overall/1/3/8/1.pbf",
                 "/tiles/overall/1/40/1/1.pbf", "/tiles/conflicts/999/1/1/1.pbf",
                 "/map/feature/nope/1/x", "/map/feature/overall/1/no-such-key", "/map/conflict/CNOPE",
                 "/map/approval/no-such-code", "/ogc/collections/plan_overall", "/ogc/collections/nope/items"):
        response = client.get(path, headers={"Accept": "application/json"})
        text = response.get_data(as_text=True)
        assert response.status_code == 404 and response.is_json, path
        assert not re.search(r"sql|syntax|psycopg|sqlite|traceback", text, re.I), (path, text)


def test_anonymous_clients_get_401_and_tokens_and_basic_work(web_app, client_as):
    anonymous = client_as(None)
    for path in ("/tiles/overall/current/1/1/1.pbf", "/tiles/", "/ogc", "/ogc/collections",
                 "/ogc/collections/overall/items", "/map/feature/overall/1/x"):
        response = anonymous.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 401, path
    assert "Bearer" in anonymous.get("/ogc").headers["WWW-Authenticate"]
    token = users.issue_token(store_of(web_app), "viewer", "qgis", "test")
    bearer = {"Authorization": f"Bearer {token}"}
    assert anonymous.get("/ogc/collections/overall/items?limit=1", headers=bearer).status_code == 200
    assert anonymous.get("/tiles/overall/current/1/1/1.pbf", headers=bearer).status_code == 302
    assert anonymous.get("/ogc", headers={"Authorization": "Bearer wrong"}).status_code == 401
    import base64
    basic = {"Authorization": "Basic " + base64.b64encode(f"viewer:{WEB_PASSWORD}".encode()).decode()}
    assert anonymous.get("/ogc/conformance", headers=basic).status_code == 200


def test_the_tile_index_gives_url_templates_for_qgis(web_app, client_as):
    body = client_as("viewer").get("/tiles/").get_json()
    ids = [layer["id"] for layer in body["layers"]]
    assert ids[:len(LAYER_IDS)] == [lid for lid in LAYER_IDS if store_of(web_app).versions(lid)]
    assert "conflicts" in ids and "approvals" in ids
    overall = body["layers"][ids.index("overall")]
    assert overall["url_template"].endswith("/tiles/overall/current/{z}/{x}/{y}.pbf")
    assert body["empty_tile_status"] == 204 and body["crs"] == "EPSG:3857"


# -- OGC API – Features --------------------------------------------------------------------------------
def test_the_landing_page_links_what_qgis_looks_for(client_as):
    client = client_as("viewer")
    landing = client.get("/ogc").get_json()
    links = {link["rel"]: link for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(links)
    assert links["data"]["href"].endswith("/ogc/collections") and links["data"]["type"] == "application/json"
    assert links["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    conforms = client.get("/ogc/conformance").get_json()["conformsTo"]
    for part in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{part}" in conforms
    document = client.get(urlparse(links["service-desc"]["href"]).path).get_json()
    assert document["openapi"].startswith("3.0") and "/collections/{collectionId}/items" in document["paths"]


def test_collections_describe_every_current_plan_the_conflicts_approvals_and_the_one_map(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    body = client.get("/ogc/collections").get_json()
    found = {c["id"]: c for c in body["collections"]}
    assert set(found) == {lid for lid in LAYER_IDS if store.versions(lid)} | {"conflicts", "approvals", "onemap"}
    for c in found.values():
        assert c["itemType"] == "feature" and CRS84 in c["crs"]
        minx, miny, maxx, maxy = c["extent"]["spatial"]["bbox"][0]
        assert 108 < minx <= maxx < 112 and 18 < miny <= maxy < 21, c["id"]
        items = next(link for link in c["links"] if link["rel"] == "items")
        assert items["type"] == "application/geo+json" and items["href"].endswith(f"/collections/{c['id']}/items")
    overall = store.read_features("overall", current(store, "overall"))
    assert found["overall"]["extent"]["spatial"]["bbox"][0] == pytest.approx(list(overall.total_bounds))
    # the one map (built once for this app's versions): its faces are finer than any one plan's features
    onemap = client.get("/ogc/collections/onemap/items?limit=5").get_json()
    assert onemap["numberMatched"] > len(overall)
    assert onemap["numberReturned"] == 5 and "overall_class" in onemap["features"][0]["properties"]
    again = client.get("/ogc/collections/onemap/items/1").get_json()
    assert again["id"] == 1 and again["properties"] == onemap["features"][0]["properties"]


def test_items_page_through_a_plan_with_the_counts_of_the_store(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    frame = store.read_features("overall", current(store, "overall"))
    first = client.get("/ogc/collections/overall/items")
    assert first.status_code == 200 and first.mimetype == "application/geo+json"
    body = first.get_json()
    assert body["type"] == "FeatureCollection" and body["numberMatched"] == len(frame)
    assert body["numberReturned"] == len(body["features"]) == min(100, len(frame))
    rels = {link["rel"]: link for link in body["links"]}
    assert {"self", "next", "collection"} <= set(rels) and "prev" not in rels
    assert parse_qs(urlparse(rels["next"]["href"]).query)["offset"] == ["100"]
    page = client.get("/ogc/collections/overall/items?limit=7&offset=7").get_json()
    assert [f["id"] for f in page["features"]] == list(frame["feature_no"].iloc[7:14])
    assert [f["properties"]["feature_key"] for f in page["features"]] == list(frame["feature_key"].iloc[7:14])
    assert parse_qs(urlparse(next(x for x in page["links"] if x["rel"] == "prev")["href"]).query)["offset"] == ["0"]
    last = client.get(f"/ogc/collections/overall/items?limit=10&offset={len(frame) - 3}").get_json()
    assert last["numberReturned"] == 3 and "next" not in {x["rel"] for x in last["links"]}
    capped = client.get("/ogc/collections/overall/items?limit=20000").get_json()
    assert capped["numberReturned"] == len(frame)
    assert parse_qs(urlparse(capped["links"][0]["href"]).query)["limit"] == ["10000"]
    geometry = page["features"][0]["geometry"]  # GeoJSON, lon/lat
    assert geometry["type"] == "MultiPolygon" and 108 < geometry["coordinates"][0][0][0][0] < 112


def test_a_bbox_selects_the_features_meeting_it(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    version = current(store, "overall")
    bbox = (110.28, 19.82, 110.31, 19.85)
    expected = features_meeting(store.read_features("overall", version, bbox=bbox), bbox)
    body = client.get("/ogc/collections/overall/items?bbox=" + ",".join(map(str, bbox)) + "&limit=1000").get_json()
    assert 0 < body["numberMatched"] == len(expected) == body["numberReturned"]
    assert sorted(f["id"] for f in body["features"]) == sorted(expected["feature_no"])
    road = client.get("/ogc/collections/road/items?bbox=" + ",".join(map(str, bbox))).get_json()
    roads = store.read_features("road", current(store, "road"))
    assert road["numberMatched"] == len(features_meeting(roads, bbox))
    for bad in ("limit=0", "limit=x", "offset=-1", "bbox=1,2,3", "bbox=3,2,1,0", "bbox=a,b,c,d", "f=html",
                "colour=red", "bbox-crs=EPSG:4490&bbox=110,19,111,20"):
        refused = client.get(f"/ogc/collections/overall/items?{bad}")
        assert refused.status_code == 400 and refused.get_json()["code"] == "InvalidParameterValue", bad


def test_single_items_conflicts_and_approvals(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    feature = store.read_features("overall", current(store, "overall")).iloc[3]
    item = client.get(f"/ogc/collections/overall/items/{feature['feature_no']}")
    assert item.status_code == 200 and item.mimetype == "application/geo+json"
    body = item.get_json()
    assert body["id"] == feature["feature_no"] and body["properties"]["feature_key"] == feature["feature_key"]
    assert body["properties"]["source_attributes"] == feature["source_attributes"]
    assert client.get("/ogc/collections/overall/items/999999").status_code == 404
    assert client.get("/ogc/collections/overall/items/x'y").status_code == 404

    run = store.detection_runs()[-1]["id"]
    patches = store.read_patches(run)
    conflicts = client.get("/ogc/collections/conflicts/items?limit=1000").get_json()
    assert conflicts["numberMatched"] == len(patches) == conflicts["numberReturned"]
    one = client.get(f"/ogc/collections/conflicts/items/{patches['conflict_id'].iloc[0]}").get_json()
    status = {c["conflict_id"]: c["status"] for c in store.conflicts()}
    assert one["properties"]["status"] == status[patches["conflict_id"].iloc[0]]

    sited = [r for r in approval_ops.list_approvals(store) if r["site"] is not None]
    sites = client.get("/ogc/collections/approvals/items").get_json()
    assert sites["numberMatched"] == len(sited)
    assert client.get(f"/ogc/collections/approvals/items/{sited[0]['code']}").get_json()["properties"]["name"] == \
        sited[0]["name"]



# -- the viewer ---------------------------------------------------------------------------------------
class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_the_viewer_has_a_switch_per_layer_and_only_same_origin_scripts(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'class="full"' in html and 'id="onemap"' in html
    for layer in [lid for lid in LAYER_IDS if store.versions(lid)] + ["conflicts", "approvals"]:
        assert f'data-layer="{layer}"' in html, layer
    parser = _Scripts()
    parser.feed(html)
    assert parser.scripts
    for attrs in parser.scripts:
        if attrs.get("src"):
            assert attrs["src"].startswith("/static/"), attrs
            with client.get(attrs["src"]) as script:
                assert script.status_code == 200
        else:  # data only: no inline code (CSP script-src 'self')
            assert attrs.get("type") == "application/json", attrs
    srcs = [a["src"] for a in parser.scripts if a.get("src")]
    assert any("vendor/leaflet/leaflet.js" in s for s in srcs) and any("vectorgrid" in s for s in srcs)
    assert any(s.endswith("js/viewer.js") for s in srcs)
    config = json.loads(re.search(r'<script type="application/json" id="onemap-config">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["tilesBase"] == "/tiles/" and "469099" in config["counties"]
    county = config["counties"]["469099"]
    overall = store.read_features("overall", current(store, "overall"))
    assert county == pytest.approx(list(overall[overall["xzqdm"] == "469099"].total_bounds))
    assert '<option value="469099">' in html
    assert "Layers" in client.get("/?lang=en").get_data(as_text=True)


def _case_with_an_approval(store):
    for case in store.conflicts():
        touching = approval_ops.approvals_touching(store, case["conflict_id"])
        if touching:
            return case, touching
    raise AssertionError("the demo has conflicts touched by approval sites")


def test_the_feature_popup_gives_attributes_linked_conflicts_and_approvals(web_app, client_as):
    store = store_of(web_app)
    client = client_as("viewer")
    case, touching = _case_with_an_approval(store)
    layer, key = case["layer_a"], case["feature_a"]
    version = current(store, layer)
    response = client.get(f"/map/feature/{layer}/{version}/{quote(key, safe='')}")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    feature = store.read_features(layer, version).set_index("feature_key").loc[key]
    assert body["attributes"]["feature_key"] == key and body["attributes"]["ydyh_code"] == feature["ydyh_code"]
    assert body["source_attributes"] == feature["source_attributes"]
    assert case["conflict_id"] in {c["conflict_id"] for c in body["conflicts"]}
    assert {t["code"] for t in touching} <= {a["code"] for a in body["approvals"]}
    detail = client.get(f"/map/conflict/{case['conflict_id']}").get_json()
    assert detail["case"]["feature_a"] == key and {t["code"] for t in touching} <= {a["code"] for a in detail["approvals"]}
    site = client.get(f"/map/approval/{touching[0]['code']}").get_json()
    minx, miny, maxx, maxy = site["bounds"]
    assert minx <= site["center"][0] <= maxx and miny <= site["center"][1] <= maxy
    assert case["conflict_id"] in {c["conflict_id"] for c in site["conflicts"]}


def test_a_script_in_the_data_stays_plain_text(store_url, tmp_path):
    """A feature attribute or an approval name holding <script> comes back as JSON text, never as markup."""
    from multiplan.ingest import load_plan
    from multiplan.store import open_store
    from web import create_app

    evil = '<script>alert("x")</script>'
    road = gpd.GeoDataFrame({"BSM": ["R<script>1"], "DJ": ["一级公路"], "XZQDM": ["469099"], "MC": [evil]},
                            geometry=[shapely.LineString([(110.25, 19.80), (110.30, 19.84)])], crs=4490)
    road.to_file(tmp_path / "road.geojson", driver="GeoJSON", engine="pyogrio")
    with open_store(store_url) as store:
        load_plan(store, "road", tmp_path / "road.geojson")
        users.add_user(store, "viewer", WEB_PASSWORD, "viewer")
        approval_ops.create_approval(store, {"code": "2025-460000-48-01-000001", "name": evil, "stage": "选址意见书",
                                             "site": shapely.box(110.26, 19.80, 110.27, 19.81)})
    app = create_app({"STORE": store_url, "TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"})
    client = app.test_client()
    assert client.post("/login", data={"username": "viewer", "password": WEB_PASSWORD}).status_code == 302

    response = client.get("/map/feature/road/1/" + quote("R<script>1", safe=""))
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_json()
    assert body["source_attributes"]["MC"] == evil and body["feature_key"] == "R<script>1"
    assert evil in response.get_data(as_text=True).replace('\\"', '"')  # JSON text as it is, not HTML-escaped
    z, x, y = tile_of(shapely.Point(110.275, 19.82), 14)
    tile = decode(client.get(f"/tiles/road/1/{z}/{x}/{y}.pbf").data)
    assert tile["road"]["features"][0]["properties"]["feature_key"] == "R<script>1"
    item = client.get("/ogc/collections/road/items/1").get_json()
    assert item["properties"]["source_attributes"]["MC"] == evil
    site = client.get("/map/approval/2025-460000-48-01-000001").get_json()
    assert site["record"]["name"] == evil
    page = client.get("/").get_data(as_text=True)  # the page names the approval (search list): escaped
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
