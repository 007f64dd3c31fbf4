"""Classification through crosswalk tables into 用地用海分类, keeping the original codes."""

from __future__ import annotations

from collections import Counter

import numpy as np
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


def _code_text(value: object, known: set[str]) -> str | None:
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    if not text:
        return None
    if known and text not in known and text.isdigit():
        for width in (2, 3, 4, 6):
            if len(text) < width and text.zfill(width) in known:
                return text.zfill(width)
    return text


def normalise_codes(values: pd.Series, known: set[str]) -> pd.Series:
    """Codes as text: numbers without '.0', blanks as None, zero padding restored when the table knows it.

    A numeric .dbf field turns 010 into 10; when ``known`` has "010" and not "10", "010" comes back.
    Each distinct value is looked at once.
    """
    positions, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = pd.Index(uniques)
    if distinct.inferred_type == "string":  # text, as most fields are: vectorised (ID fields hold a value per feature)
        stripped = distinct.str.strip()
        table = np.append(np.asarray(stripped, dtype=object), None)
        table[np.flatnonzero(np.asarray(stripped == ""))] = None
        if known:  # zero padding, for the few codes that need it
            for i in np.flatnonzero(~stripped.isin(list(known)) & np.asarray(stripped.str.isdigit(), dtype=bool)):
                table[i] = _code_text(table[i], known)
    else:
        table = np.array([_code_text(u, known) for u in uniques] + [None], dtype=object)
    return pd.Series(table[positions], index=values.index, dtype=object)


def classify(codes: pd.Series, crosswalk: Crosswalk) -> tuple[pd.Series, pd.Series, Counter]:
    """Unified codes and match kinds for original ``codes``; unknown codes counted, never dropped.

    An ambiguous one-to-many row gives its targets joined by '|' (e.g. GB 50137 E2 -> '01|02|03|04').
    """
    table = crosswalk.lookup()
    positions, uniques = pd.factorize(codes, use_na_sentinel=True)
    unified = np.array([table[c].unified_code if c in table else None for c in uniques] + [None], dtype=object)
    match = np.array([table[c].match if c in table else "unknown" for c in uniques] + ["missing"], dtype=object)
    counts = np.bincount(positions + 1, minlength=len(uniques) + 1)  # slot 0 counts the missing
    unknown = Counter({str(c): int(counts[i + 1]) for i, c in enumerate(uniques) if c not in table})
    if counts[0]:
        unknown["None"] = int(counts[0])
    return (pd.Series(unified[positions], dtype=object), pd.Series(match[positions], dtype=object), unknown)


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
