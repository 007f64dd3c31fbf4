"""Classification through crosswalk tables into 用地用海分类, keeping the original codes."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from multiplan.errors import InputError
from multiplan.specs import Crosswalk, LayerSpec, unified_classes


def _dbf_truncations(name: str) -> set[str]:
    """``name`` as a .dbf keeps it: at most 10 bytes in GBK or UTF-8 (用途区类型代码 -> 用途区类型)."""
    out = set()
    for enc in ("gbk", "utf-8"):
        try:
            raw = name.encode(enc)
        except UnicodeEncodeError:
            continue
        if len(raw) > 10:
            out.add(raw[:10].decode(enc, errors="ignore").lower())
    return out


def find_field(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` present in ``columns``, case-insensitively, or as a .dbf cut it short."""
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    for cand in candidates:
        for short in _dbf_truncations(cand):
            if short in lower:
                return lower[short]
    return None


def class_field_for(spec: LayerSpec, columns: list[str], override: str | None, file_name: str) -> str:
    """The name of the class field in a file: ``override`` when given, else the spec's name or aliases."""
    candidates = (override,) if override else spec.class_candidates
    found = find_field(columns, candidates)
    if found is None:
        raise InputError("class_field_missing", file=file_name, tried=", ".join(candidates),
                         fields=", ".join(columns))
    return found


def normalise_codes(values: pd.Series, known: set[str]) -> pd.Series:
    """Codes as text: numbers without '.0', blanks as None, zero padding restored when the table knows it.

    A numeric .dbf field turns 010 into 10; when ``known`` has "010" and not "10", "010" comes back.
    """
    if pd.api.types.is_bool_dtype(values):
        text = values.astype(object).map(str)
    elif pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
        integral = numbers.notna() & (numbers == numbers.round())
        text = pd.Series([None] * len(values), index=values.index, dtype=object)
        text[integral] = numbers[integral].astype("int64").astype(str)
        text[numbers.notna() & ~integral] = numbers[numbers.notna() & ~integral].astype(str)
    else:
        text = pd.Series(values.to_numpy(dtype=object), index=values.index, dtype=object)
        is_str = text.map(lambda v: isinstance(v, str)).astype(bool)
        text[is_str] = text[is_str].str.strip()
        text[~is_str & text.notna()] = text[~is_str & text.notna()].map(str)
        text[text.isna() | (text == "")] = None
    if known:
        fixes = {}
        for code in pd.unique(text.dropna()):
            if code not in known and code.isdigit():
                padded = next((code.zfill(w) for w in (2, 3, 4, 6) if len(code) < w and code.zfill(w) in known), None)
                if padded:
                    fixes[code] = padded
        if fixes:
            text = text.map(lambda c: fixes.get(c, c))
    return text.astype(object).where(text.notna(), None)


def classify(codes: pd.Series, crosswalk: Crosswalk) -> tuple[pd.Series, pd.Series, Counter]:
    """Unified codes and match kinds for original ``codes``; unknown codes counted, never dropped.

    An ambiguous one-to-many row gives its targets joined by '|' (e.g. GB 50137 E2 -> '01|02|03|04').
    """
    table = crosswalk.lookup()
    unified_of = {src: row.unified_code for src, row in table.items()}
    match_of = {src: row.match for src, row in table.items()}
    unified = pd.Series(codes.map(unified_of).to_numpy(dtype=object), dtype=object)
    unified = unified.where(unified.notna(), None)
    match = pd.Series(codes.map(match_of).to_numpy(dtype=object), dtype=object)
    match[match.isna()] = "unknown"
    match[codes.isna().to_numpy()] = "missing"
    unknown = Counter(str(c) for c, m in zip(codes, match, strict=True) if m in ("unknown", "missing"))
    return unified, match, unknown


def class_name(code: str | None, lang: str = "zh") -> str:
    """Display name of a unified code (or of each part of an ambiguous one)."""
    if not code:
        return "未知" if lang == "zh" else "unknown"
    classes = unified_classes()
    parts = code.split("|")
    if len(parts) > 1 and all(p in classes for p in parts):
        if all(classes[p].is_construction for p in parts):
            return "建设用地(未细分)" if lang == "zh" else "construction land (unspecified)"
        if all(p[:2] in ("01", "02", "03", "04") for p in parts):
            return "农林用地(未细分)" if lang == "zh" else "farm or forest land (unspecified)"
    return " | ".join(classes[c].name(lang) if c in classes else c for c in parts)
