"""Check every declarative file: layer specs, crosswalks and conflict rules."""

from __future__ import annotations

from pathlib import Path

from multiplan import config
from multiplan.specs import load_crosswalk, load_layer_specs


def validate_all(layers_dir: str | Path | None = None, rules_dir: str | Path | None = None) -> list[str]:
    """Validate all specs; return what was checked. Raises :class:`SpecError` on the first problem."""
    folder = Path(layers_dir or config.setting("layers_dir"))
    checked = []
    for path in sorted((folder / "crosswalks").glob("*.yaml")):
        load_crosswalk(path.stem, folder)
        checked.append(f"crosswalk {path.name}")
    for spec in load_layer_specs(folder).values():
        checked.append(f"layer {Path(spec.source).name}")
    from multiplan.rules import load_rules

    for rule in load_rules(rules_dir, folder).values():
        checked.append(f"rule {Path(rule.source).name} ({rule.kind}, {rule.severity})")
    from multiplan.rules.priority import load_priority

    load_priority(rules_dir)
    checked.append("priority _priority.yaml")
    from multiplan.indicators import load_indicators

    checked += [f"indicator {i.id}" for i in load_indicators(rules_dir)]
    return checked
