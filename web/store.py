"""The app's store: one object per app (its caches serve every request; both back-ends are thread-safe)."""

from __future__ import annotations

from flask import current_app

from multiplan.store.base import PlanStore


def get_store() -> PlanStore:
    return current_app.extensions["multiplan_store"]
