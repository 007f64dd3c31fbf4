"""Layer specs and crosswalks are validated data."""

from __future__ import annotations

import shutil

import pytest

from multiplan.errors import SpecError
from multiplan.specs import LAYER_IDS, load_layer_specs, unified_classes
from multiplan.validation import validate_all


def test_all_twelve_layers_load_with_titles_and_crosswalks():
    specs = load_layer_specs()
    assert tuple(specs) == LAYER_IDS
    for spec in specs.values():
        assert spec.title_zh and spec.title_en and spec.crosswalk.rows
        assert (spec.corridor is not None) == spec.network == (spec.geometry == "line")
    assert specs["power"].corridor.width("500kV") == 60
    assert specs["power"].corridor.width("unknown level") == specs["power"].corridor.default_m
    assert specs["urban"].crosswalk.lookup()["E2"].targets == ("01", "02", "03", "04")


def test_unified_classes_know_construction_and_sea():
    classes = unified_classes()
    assert classes["0701"].is_construction and not classes["0601"].is_construction
    assert classes["1906"].is_sea and not classes["23"].is_sea


@pytest.fixture
def layers_copy(tmp_path):
    from multiplan import config

    dest = tmp_path / "layers"
    shutil.copytree(config.PROJECT_ROOT / "layers", dest)
    return dest


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("geometry: polygon", "geometry: polygone"), "geometry"),
    (lambda t: t.replace('target: "10", match: partial, name: 独立工矿用地区', 'target: "99", match: partial, name: x'), "'99'"),
    (lambda t: t.replace("id: land_use", "id: urban"), "urban"),
    (lambda t: t + "\nunknown_key: 1\n", "unknown_key"),
    (lambda t: t + "\n  - [unclosed\n", "land_use.yaml"),
])
def test_invalid_spec_is_refused_with_the_file_and_the_problem(layers_copy, edit, expected):
    path = layers_copy / "land_use.yaml"
    path.write_text(edit(path.read_text("utf-8")), "utf-8")
    with pytest.raises(SpecError) as err:
        validate_all(layers_copy)
    assert "land_use.yaml" in str(err.value) and expected in str(err.value)


def test_duplicate_crosswalk_source_is_refused(layers_copy):
    path = layers_copy / "crosswalks" / "sandiao.yaml"
    path.write_text(path.read_text("utf-8") + '  - {source: "0101", target: "0102", match: exact}\n', "utf-8")
    with pytest.raises(SpecError, match="0101"):
        validate_all(layers_copy)


def test_validate_lists_every_file():
    checked = validate_all()
    assert len([c for c in checked if c.startswith("layer")]) == 12
