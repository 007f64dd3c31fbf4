"""Shared fixtures: one test suite over both stores, plan files built in code."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from multiplan import i18n

PG_URL = os.environ.get("MULTIPLAN_TEST_DATABASE_URL")
# In CI (and under scripts/test.sh) a missing PostGIS is a failure, never a skip.
REQUIRE_POSTGIS = bool(os.environ.get("MULTIPLAN_REQUIRE_POSTGIS") or os.environ.get("CI"))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "awkward_files"


@pytest.fixture(autouse=True)
def _chinese_messages(monkeypatch):
    monkeypatch.delenv("MULTIPLAN_STORE", raising=False)
    i18n.set_language("zh")
    yield
    i18n._active = None


def _need_postgis() -> str:
    if not PG_URL:
        if REQUIRE_POSTGIS:
            pytest.fail("PostGIS is required here: MULTIPLAN_TEST_DATABASE_URL is not set (run scripts/test.sh)")
        pytest.skip("no PostGIS: set MULTIPLAN_TEST_DATABASE_URL or run scripts/test.sh")
    return PG_URL


@pytest.fixture
def pg_schema_url():
    """A PostGIS URL whose search_path is a fresh schema, dropped afterwards."""
    url = _need_postgis()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema},public"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def store_url(request, tmp_path):
    """The URL of an empty, initialised store of each back-end."""
    from multiplan.store import open_store

    if request.param == "gpkg":
        url = str(tmp_path / "store.gpkg")
    else:
        url = request.getfixturevalue("pg_schema_url")
    with open_store(url) as store:
        store.init()
    return url


@pytest.fixture
def store(store_url):
    from multiplan.store import open_store

    with open_store(store_url) as s:
        yield s


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """The sample county loaded by `multiplan demo` into a GeoPackage store."""
    from click.testing import CliRunner

    from multiplan.cli import cli, demo  # noqa: F401  (importing registers the command)
    from multiplan.store import open_store

    folder = tmp_path_factory.mktemp("demo")
    path = folder / "demo.gpkg"
    result = CliRunner().invoke(cli, ["--store", str(path), "demo", "--no-serve", "--report-dir", str(folder / "report")])
    assert result.exit_code == 0, result.output
    assert "已入库 12 个规划版本" in result.output
    with open_store(str(path)) as store:
        yield store


# -- the web application ---------------------------------------------------------------------------
WEB_PASSWORD = "test-password-1"
#: One account per role; the user name is the role's name.
WEB_ROLES = ("viewer", "planner", "officer", "admin")


def _add_web_users(url: str) -> None:
    from multiplan import users
    from multiplan.store import open_store

    with open_store(url) as store:
        known = {u["username"] for u in users.list_users(store)}
        for role in WEB_ROLES:
            if role in known:
                users.update_user(store, role, "test", role=role, password=WEB_PASSWORD)
            else:
                users.add_user(store, role, WEB_PASSWORD, role, f"测试{role}", actor="test")


@pytest.fixture(scope="session", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def web_store_url(request, demo_store, tmp_path_factory):
    """A store of each kind holding the demo county (plans, conflicts, approvals and their checks) and one
    user per role; shared by the web tests, which create their own records when they change anything."""
    import shutil

    folder = tmp_path_factory.mktemp("web")
    if request.param == "gpkg":
        url = str(folder / "web.gpkg")
        shutil.copy(demo_store.url, url)
        _add_web_users(url)
        yield url
        return
    from click.testing import CliRunner

    from multiplan.cli import cli, demo  # noqa: F401

    base = _need_postgis()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema},public"
    result = CliRunner().invoke(cli, ["--store", url, "demo", "--no-serve", "--report-dir", str(folder / "report")])
    assert result.exit_code == 0, result.output
    _add_web_users(url)
    yield url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def make_app(web_store_url):
    """``make_app(**settings)``: an app on the web store with these settings; its store is closed afterwards."""
    from multiplan.cli.demo import SAMPLE_DIR
    from web import create_app

    apps = []

    def make(**settings):
        app = create_app({"STORE": web_store_url, "TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test",
                          "DEM": str(SAMPLE_DIR / "dem.tif"), **settings})
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.extensions["multiplan_store"].close()


@pytest.fixture
def web_app(make_app):
    return make_app()


@pytest.fixture
def client_as(web_app):
    """``client_as(role)``: a test client logged in as the user of that role (``None``: not logged in)."""
    def make(role):
        client = web_app.test_client()
        if role:
            response = client.post("/login", data={"username": role, "password": WEB_PASSWORD})
            assert response.status_code == 302, response.data
        return client
    return make
