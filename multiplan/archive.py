"""Unpack an uploaded zip archive only after checking it for corruption, path tricks and bombs."""

from __future__ import annotations

import contextlib
import lzma
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from multiplan.config import ArchiveLimits
from multiplan.errors import ArchiveError

__all__ = ["safe_extract"]

_CHUNK = 256 * 1024  # streaming buffer: memory stays bounded whatever the member's size
_RATIO_FLOOR = 1024 * 1024  # tiny files (.prj, .cpg) compress absurdly well and are harmless
_UTF8_FLAG = 0x800
_UNSUPPORTED_FLAGS = 0x01 | 0x20 | 0x40  # encrypted, compressed-patched, strong encryption
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_NESTED_SUFFIXES = (".zip", ".7z", ".rar", ".gz", ".tar", ".tgz", ".bz2", ".xz")
# Archive signatures, so a nested archive is caught even when renamed (e.g. roads.dat).
_NESTED_MAGIC = re.compile(
    rb"PK\x03\x04|PK\x05\x06"  # zip (also .docx/.xlsx/.kmz: all zips)
    rb"|7z\xbc\xaf\x27\x1c|Rar!\x1a\x07|\x1f\x8b\x08|\xfd7zXZ\x00|BZh[1-9]1AY&SY"
)
_TAR_MAGIC = (257, b"ustar")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # 30 bytes; the last two fields: name and extra lengths
_DRIVE = re.compile(r"^[A-Za-z]:")
# Errors a decompressor or the zip reader raises on damaged member data.
# (bz2 reports bad data as OSError.)
_CORRUPT = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError)

_Fail = Callable[..., ArchiveError]
_DEFAULT_LIMITS = ArchiveLimits()  # frozen, so one shared default is safe


def safe_extract(
    archive: Path, dest: Path, limits: ArchiveLimits = _DEFAULT_LIMITS
) -> list[Path]:
    """Unpack zip ``archive`` into the empty folder ``dest`` if safe; return the files written.

    Raises :class:`ArchiveError` otherwise, and then ``dest`` holds nothing this call wrote.
    """
    archive, dest = Path(archive), Path(dest)
    name = archive.name

    def fail(key: str, **params: object) -> ArchiveError:
        return ArchiveError(key, file=name, **params)

    # Open it ourselves first so a missing or unreadable file is not reported as a bad zip.
    with open(archive, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise fail("file_empty")
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise fail("not_a_zip", detail=_short(exc)) from exc
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.max_entries:
                raise fail("zip_too_many", count=len(infos), limit=limits.max_entries)
            _check_layout(fh, zf, fail)
            plan = _plan(infos, dest, limits, fail)
            return _extract(zf, plan, dest, limits, fail)


def _plan(
    infos: list[zipfile.ZipInfo], dest: Path, limits: ArchiveLimits, fail: _Fail
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Vet every entry before anything is written; return (info, relative parts) to extract."""
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        entry = _decode_name(info)
        parts = _safe_parts(entry)
        if parts is None:
            raise fail("zip_unsafe_path", entry=entry)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise fail("zip_symlink", entry=entry)
        if info.is_dir() or not parts or "__MACOSX" in parts or parts[-1] == ".DS_Store":
            continue
        if info.flag_bits & _UNSUPPORTED_FLAGS:
            raise fail("not_a_zip", detail=f"entry {entry} is encrypted")
        if info.compress_type not in _METHODS:
            detail = f"entry {entry} uses compression method {info.compress_type}"
            raise fail("not_a_zip", detail=detail)
        if parts[-1].lower().endswith(_NESTED_SUFFIXES):
            raise fail("zip_nested", entry=entry)
        if info.file_size > _RATIO_FLOOR:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise fail("zip_ratio", entry=entry, ratio=ratio, limit=limits.max_ratio)
        # Two entries with one name would overwrite each other; readers disagree on which wins.
        if parts in seen:
            raise fail("not_a_zip", detail=f"entry {entry} appears twice")
        seen.add(parts)
        total += info.file_size
        plan.append((info, parts))
    if total > limits.max_total_bytes:
        raise fail("zip_too_big", limit=limits.max_total_bytes)
    for _, parts in plan:
        for i in range(1, len(parts)):
            if parts[:i] in seen:
                clash = "/".join(parts[:i])
                raise fail("not_a_zip", detail=f"{clash} is both a file and a folder")
    root = dest.resolve()
    for _, parts in plan:  # belt and braces: the joined path must stay under dest
        if not dest.joinpath(*parts).resolve().is_relative_to(root):
            raise fail("zip_unsafe_path", entry="/".join(parts))
    return plan


def _extract(
    zf: zipfile.ZipFile,
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    dest: Path,
    limits: ArchiveLimits,
    fail: _Fail,
) -> list[Path]:
    """Stream each vetted member out, counting real bytes; on failure remove what was written."""
    files: list[Path] = []
    dirs: list[Path] = []
    total = 0
    try:
        for info, parts in plan:
            target = dest.joinpath(*parts)
            for i in range(1, len(parts)):
                folder = dest.joinpath(*parts[:i])
                if not folder.exists():
                    folder.mkdir()
                    dirs.append(folder)
            entry = "/".join(parts)
            try:
                src = zf.open(info)
            except (*_CORRUPT, NotImplementedError, RuntimeError) as exc:
                raise fail("not_a_zip", detail=_short(exc)) from exc
            with src, open(target, "xb") as out:
                files.append(target)
                written = 0
                while True:
                    try:
                        chunk = src.read(_CHUNK)
                    except _CORRUPT as exc:  # bad CRC / broken deflate data only shows on read
                        raise fail("not_a_zip", detail=_short(exc)) from exc
                    if not chunk:
                        break
                    if written == 0 and _is_archive(chunk):
                        raise fail("zip_nested", entry=entry)
                    written += len(chunk)
                    total += len(chunk)
                    # Sizes in the directory are the attacker's word: trust only inflated bytes.
                    if written > info.file_size or total > limits.max_total_bytes:
                        raise fail("zip_too_big", limit=limits.max_total_bytes)
                    out.write(chunk)
            if written != info.file_size:
                raise fail("not_a_zip", detail=f"entry {entry} is shorter than declared")
    except BaseException:
        # Best effort: a failing cleanup must not hide the error that caused it.
        with contextlib.suppress(OSError):
            for path in files:
                path.unlink(missing_ok=True)
            for path in reversed(dirs):
                path.rmdir()
        raise
    return files


def _check_layout(raw: BinaryIO, zf: zipfile.ZipFile, fail: _Fail) -> None:
    """Refuse entries whose data overlap (CVE-2024-0450 bombs; 3.11.7 does not check this)."""
    spans = []
    for info in zf.infolist():
        raw.seek(info.header_offset)
        header = raw.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise fail("not_a_zip", detail=f"entry {_decode_name(info)} has no local header")
        *_, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        data_start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        spans.append((info.header_offset, data_start + info.compress_size, _decode_name(info)))
    limit = getattr(zf, "start_dir", None) or raw.seek(0, os.SEEK_END)
    spans.sort()
    bounds = spans[1:] + [(limit, 0, "")]  # the last entry must end before the central directory
    for (_, end, first), (start, _, second) in zip(spans, bounds, strict=True):
        if end > start:
            what = f"entries {first} and {second} overlap" if second else f"entry {first} overruns"
            raise fail("not_a_zip", detail=f"{what} (a zip bomb?)")


def _decode_name(info: zipfile.ZipInfo) -> str:
    """The entry's real name: undo cp437 decoding of UTF-8 or GBK names written without the flag."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    raw = info.filename.encode("cp437")
    # UTF-8 first: valid UTF-8 is a strong signal, while GBK accepts much mojibake.
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    return info.filename


def _safe_parts(entry: str) -> tuple[str, ...] | None:
    """The path components of ``entry``, or None if it could escape the destination folder."""
    name = entry.replace("\\", "/")  # Windows tools write backslashes; treat them as separators
    if name.startswith("/"):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts or any(_DRIVE.match(p) for p in parts):
        return None
    return parts  # may be empty ("./"): nothing to write, skipped by the caller


def _is_archive(head: bytes) -> bool:
    """Whether a member's first bytes carry an archive signature."""
    offset, magic = _TAR_MAGIC
    return bool(_NESTED_MAGIC.match(head)) or head[offset : offset + len(magic)] == magic


def _short(exc: BaseException) -> str:
    """A one-line detail for not_a_zip."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
