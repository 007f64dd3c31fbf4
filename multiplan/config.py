"""Settings with their defaults and help: where the store, the specs and the limits are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The embedded default store: one GeoPackage in the working directory.
DEFAULT_STORE = "multiplan.gpkg"


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: object
    help: str


SETTINGS = (
    Setting("store", "MULTIPLAN_STORE", DEFAULT_STORE,
            "Store: a .gpkg path (embedded) or a postgresql:// URL (PostGIS)."),
    Setting("layers_dir", "MULTIPLAN_LAYERS_DIR", str(PROJECT_ROOT / "layers"),
            "Folder of layer specs, one YAML per plan layer."),
    Setting("rules_dir", "MULTIPLAN_RULES_DIR", str(PROJECT_ROOT / "conflict_rules"),
            "Folder of conflict rules, one YAML per rule."),
    Setting("lang", "MULTIPLAN_LANG", "zh", "Language of messages and reports: zh or en."),
    Setting("dem", "MULTIPLAN_DEM", "", "DEM GeoTIFF for the slope rule and the terrain of site checks."),
)


def setting(name: str) -> str:
    """The value of setting ``name``: its environment variable, else its default."""
    for s in SETTINGS:
        if s.name == name:
            return os.environ.get(s.env) or str(s.default)
    raise KeyError(name)


# Hainan Province, land and sea including 三沙 (lon/lat, EPSG:4490). Features outside are refused.
REGION_BOUNDS = (107.5, 3.0, 118.5, 20.5)
# The island alone: used to choose between candidate CRSs that all put data in the region.
ISLAND_BOUNDS = (108.3, 18.0, 111.3, 20.3)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps for unpacking uploaded archives (CPython 3.11.7 has no zip-bomb guard of its own)."""

    max_entries: int = 2000
    max_total_bytes: int = 4 * 1024**3
    max_ratio: int = 200
