"""Conflict rules are validated data, checked against the layer specs."""

from __future__ import annotations

import shutil

import pytest

from multiplan import config
from multiplan.errors import SpecError
from multiplan.rules import RULE_KINDS, ClassFilter, RuleKind, load_rules, register_kind


def test_every_domain_rule_is_there_and_valid():
    rules = load_rules()
    assert {"two_plan_1", "two_plan_2", "farmland", "farmland_use", "red_line_1", "red_line_2",
            "boundary_red_line", "boundary_farmland", "network_red_line", "network_farmland", "forest_1",
            "forest_2", "forest_3_4", "forest_farmland", "control_zone", "conditional", "land_sea", "in_plan",
            "slope", "urban_boundary"} <= set(rules)
    assert {r.kind for r in rules.values()} == {"overlap", "containment", "corridor", "coverage", "raster"}
    assert rules["farmland"].severity == "forbidden" and rules["farmland"].a.layers == ("overall", "urban", "land_use")
    assert rules["slope"].params == {"raster": {"source": "dem", "measure": "slope_deg", "above": 25}}
    assert rules["network_red_line"].exceptions[0]["field"] == ["PZWH", "批准文号"]


def test_class_filter_needs_every_target_of_an_ambiguous_class():
    construction = ClassFilter(groups=("construction",))
    assert construction.matches_unified("0701") and construction.matches_unified("07|08|13")
    assert not construction.matches_unified("01|07") and not construction.matches_unified(None)
    assert ClassFilter().matches_unified(None)
    assert ClassFilter(unified=("02", "03")).matches_unified("0301")


@pytest.fixture
def rules_copy(tmp_path):
    dest = tmp_path / "rules"
    shutil.copytree(config.PROJECT_ROOT / "conflict_rules", dest)
    return dest


@pytest.mark.parametrize("name, edit, expected", [
    ("farmland", lambda t: t.replace("b: {layer: farmland}", "b: {layer: farmlands}"), "unknown layer 'farmlands'"),
    ("red_line_1", lambda t: t.replace('zone: ["1"]', 'zone: ["9"]'), "'9' is not a zone code of layer 'eco_redline'"),
    ("land_sea", lambda t: t.replace('original: ["6"]', 'original: ["X"]'), "'X' is not a class code of layer 'ocean'"),
    ("farmland_use", lambda t: t.replace('"06"]', '"99"]'), "'99' is not a 用地用海分类 code"),
    ("network_farmland", lambda t: t.replace("[road, fiber, power, gas, water]", "[overall]"), "needs line"),
    ("in_plan", lambda t: t.replace("[overall, land_use, urban, ocean]", "[farmland]"), "not a coverage"),
    ("farmland", lambda t: t.replace("kind: overlap", "kind: overlapp"), "not registered"),
    ("farmland", lambda t: t.replace("severity: forbidden", "severity: fatal"), "severity"),
    ("farmland", lambda t: t.replace("b: {layer: farmland}\n", ""), "needs a layer b"),
    ("slope", lambda t: t.replace("above: 25", "above: steep"), "raster"),
])
def test_bad_rules_are_refused_naming_the_file_and_the_reference(rules_copy, name, edit, expected):
    path = rules_copy / f"{name}.yaml"
    path.write_text(edit(path.read_text("utf-8")), "utf-8")
    with pytest.raises(SpecError) as err:
        load_rules(rules_copy)
    assert f"{name}.yaml" in str(err.value) and expected in str(err.value)


def test_custom_kinds_register_like_built_in_ones(rules_copy, monkeypatch):
    monkeypatch.setitem(RULE_KINDS, "buffer_distance", RULE_KINDS["overlap"])
    register_kind(RuleKind("buffer_distance", "A within a distance of B",
                           params_schema={"distance_m": {"type": "number", "exclusiveMinimum": 0}}))
    (rules_copy / "near_red_line.yaml").write_text(
        (rules_copy / "red_line_1.yaml").read_text("utf-8").replace("id: red_line_1", "id: near_red_line")
        .replace("kind: overlap", "kind: buffer_distance\ndistance_m: 100"), "utf-8")
    rule = load_rules(rules_copy)["near_red_line"]
    assert rule.kind == "buffer_distance" and rule.params == {"distance_m": 100}


def test_suggested_resolution_follows_the_national_priority_then_the_plan_order():
    from multiplan.rules.priority import load_priority

    priority = load_priority()
    assert priority.suggest("overall", "041", "eco_redline", "1")["give_way"] == "a"  # 红线 > 开发边界
    assert priority.suggest("farmland", None, "overall", "041")["give_way"] == "b"    # 基本农田 > 开发边界
    redline_vs_farm = priority.suggest("eco_redline", "2", "farmland", None)
    assert redline_vs_farm["give_way"] == "b" and "生态保护红线优先于永久基本农田" in redline_vs_farm["zh"]
    assert priority.suggest("urban", None, "land_use", None)["give_way"] == "a"      # by the local plan order
    assert priority.suggest("urban", None, "urban", None)["give_way"] == "review"
    assert priority.suggest("overall", "05", None, None)["give_way"] == "a"


def test_a_bad_priority_file_is_refused(rules_copy):
    from multiplan.rules.priority import load_priority

    path = rules_copy / "_priority.yaml"
    path.write_text(path.read_text("utf-8").replace("layer: farmland", "layer: farmlands"), "utf-8")
    with pytest.raises(SpecError, match="_priority.yaml"):
        load_priority(rules_copy)


def test_the_rule_set_hash_follows_the_rule_files(rules_copy, monkeypatch):
    import hashlib

    from multiplan import specs

    monkeypatch.setattr(specs, "STAMP_INTERVAL_S", 0.0)  # files are looked at again on every load

    from multiplan.detection import rule_set_hash

    first = load_rules(rules_copy)
    before = rule_set_hash(first)
    expected = hashlib.sha256(b"".join((rules_copy / f"{rid}.yaml").read_bytes() for rid in sorted(first)))
    assert before == expected.hexdigest()
    path = rules_copy / "farmland.yaml"
    path.write_text(path.read_text("utf-8") + "\n# 修订\n", "utf-8")
    changed = load_rules(rules_copy)
    assert rule_set_hash(changed) != before
