"""Stores: one interface (:class:`PlanStore`), two back-ends (GeoPackage, PostGIS)."""

from __future__ import annotations

from multiplan import config
from multiplan.store.base import AuditEntry, LoadMeta, PlanStore, PlanVersion

__all__ = ["AuditEntry", "LoadMeta", "PlanStore", "PlanVersion", "open_store"]


def open_store(url: str | None = None) -> PlanStore:
    """The store at ``url`` (a postgresql:// URL or a .gpkg path); default: $MULTIPLAN_STORE or multiplan.gpkg."""
    url = url or config.setting("store")
    if url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        from multiplan.store.postgis import PostgisStore

        return PostgisStore(url)
    from multiplan.store.gpkg import GpkgStore

    return GpkgStore(url)
