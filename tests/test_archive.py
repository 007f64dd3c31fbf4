"""safe_extract: every bad archive is built here, in code, and must leave dest empty."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from multiplan.archive import safe_extract
from multiplan.config import ArchiveLimits
from multiplan.errors import ArchiveError

MiB = 1024 * 1024
# Central-directory record field offsets (APPNOTE 4.3.12) and local header ones (4.3.7).
CD_FLAGS, CD_CSIZE, CD_USIZE, CD_OFFSET = 8, 20, 24, 42
LH_FLAGS = 6


# --- helpers ---------------------------------------------------------------------------------


def write_zip(path: Path, entries: list, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name or ZipInfo, bytes) pairs, written in order."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def zip_bytes(entries: list, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def central_records(data: bytes) -> list[int]:
    """Offsets of the central-directory records, read from the end-of-central-directory record."""
    eocd = data.rindex(b"PK\x05\x06")
    count, _size, start = struct.unpack_from("<HLL", data, eocd + 10)
    offsets, pos = [], start
    for _ in range(count):
        assert data[pos : pos + 4] == b"PK\x01\x02"
        offsets.append(pos)
        nlen, elen, clen = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + nlen + elen + clen
    return offsets


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def refuse(
    archive: Path, dest: Path, key: str, limits: ArchiveLimits | None = None
) -> ArchiveError:
    """safe_extract must raise ArchiveError(key), name the archive, and leave dest empty."""
    with pytest.raises(ArchiveError) as caught:
        if limits is None:
            safe_extract(archive, dest)
        else:
            safe_extract(archive, dest, limits)
    exc = caught.value
    assert exc.key == key, exc.render("en")
    assert archive.name in str(exc)
    assert archive.name in exc.render("en") and archive.name in exc.render("zh")
    assert list(dest.iterdir()) == []
    return exc


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50 MB of zeros deflated to ~50 kB, streamed so the zeros never sit in memory at once."""
    path = tmp_path_factory.mktemp("bomb") / "炸弹.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.shp", "w") as out:
        block = bytes(MiB)
        for _ in range(50):
            out.write(block)
    return path


# --- good path -------------------------------------------------------------------------------


def test_good_archive_keeps_subfolders_and_skips_junk(tmp_path: Path, dest: Path) -> None:
    shp = random.Random(1).randbytes(5000)
    prj = b'GEOGCS["China Geodetic Coordinate System 2000"]' * 2000  # ~100 kB, ratio >> 200
    archive = write_zip(
        tmp_path / "规划成果.zip",
        [
            ("成果/", b""),
            ("成果/土地利用规划.shp", shp),
            ("成果/土地利用规划.prj", prj),
            ("说明.txt", "海南".encode()),
            ("./", b""),
            ("__MACOSX/成果/._土地利用规划.shp", b"junk"),
            (".DS_Store", b"junk"),
            ("成果/.DS_Store", b"junk"),
        ],
    )
    files = safe_extract(archive, dest)
    folder = dest / "成果"
    assert files == [folder / "土地利用规划.shp", folder / "土地利用规划.prj", dest / "说明.txt"]
    assert (dest / "成果" / "土地利用规划.shp").read_bytes() == shp
    assert (dest / "成果" / "土地利用规划.prj").read_bytes() == prj
    assert sorted(p for p in dest.rglob("*") if p.is_file()) == sorted(files)
    assert not (dest / "__MACOSX").exists()


def test_gbk_names_without_utf8_flag_are_redecoded(tmp_path: Path, dest: Path) -> None:
    # zipfile always writes non-ASCII names as flagged UTF-8, so write same-length ASCII
    # placeholders and swap the raw GBK (or cp437) bytes in, leaving flag bit 0x800 clear.
    names = {
        "成果/土地利用规划.shp": "gbk",
        "成果/淺灘.dbf": "gbk",  # 淺 is 0xDC5C in GBK: its trail byte is a backslash
        "café.txt": "cp437",  # not GBK either: keeps the cp437 reading
    }
    raw = {name: name.encode(enc) for name, enc in names.items()}
    placeholders = {n: (chr(65 + i) * len(b)).encode() for i, (n, b) in enumerate(raw.items())}
    data = zip_bytes([(p.decode(), name.encode()) for name, p in placeholders.items()])
    for name, p in placeholders.items():
        assert data.count(p) == 2  # local header + central directory
        data = data.replace(p, raw[name])
    for pos in central_records(data):
        assert not struct.unpack_from("<H", data, pos + CD_FLAGS)[0] & 0x800
    archive = tmp_path / "gbk.zip"
    archive.write_bytes(data)

    files = safe_extract(archive, dest)
    assert files == [dest.joinpath(*name.split("/")) for name in names]
    for name in names:
        assert dest.joinpath(*name.split("/")).read_bytes() == name.encode()


# --- not a zip / corrupt -----------------------------------------------------------------------


def test_empty_file(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "空.zip"
    archive.write_bytes(b"")
    refuse(archive, dest, "file_empty")


def _good() -> bytes:
    return zip_bytes([("a.txt", b"hello " * 100), ("b.txt", b"world " * 100)])


def _bad_central_magic() -> bytes:
    data = _good()
    pos = central_records(data)[1]
    return data[:pos] + b"PK\x01\x09" + data[pos + 4 :]


def _shared_offset() -> bytes:
    # Two directory entries pointing at one local header: the classic overlapping-entry bomb.
    data = _good()
    first, second = central_records(data)
    (offset,) = struct.unpack_from("<L", data, first + CD_OFFSET)
    return patch(data, second + CD_OFFSET, "<L", offset)


def _overrun() -> bytes:
    # a.txt claims more compressed bytes than it has, running into b.txt's header.
    data = _good()
    first = central_records(data)[0]
    (csize,) = struct.unpack_from("<L", data, first + CD_CSIZE)
    return patch(data, first + CD_CSIZE, "<L", csize + 40)


def _no_local_header() -> bytes:
    data = _good()
    return patch(data, central_records(data)[1] + CD_OFFSET, "<L", 3)


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda: b"this is a shapefile, honest\n" * 10, "not a zip"),
        (lambda: _good()[: len(_good()) // 2], "not a zip"),
        (lambda: _good()[:-5], "not a zip"),
        (_bad_central_magic, "central directory"),
        (_shared_offset, "overlap"),
        (_overrun, "overlap"),
        (_no_local_header, "no local header"),
    ],
    ids=[
        "text",
        "truncated-half",
        "truncated-tail",
        "bad-central-dir",
        "shared-offset",
        "overrun",
        "no-local-header",
    ],
)
def test_not_a_zip(tmp_path: Path, dest: Path, make, detail: str) -> None:
    archive = tmp_path / "坏.zip"
    archive.write_bytes(make())
    exc = refuse(archive, dest, "not_a_zip")
    assert detail in exc.render("en")


@pytest.mark.parametrize(
    ("compression", "where", "detail"),
    [
        (zipfile.ZIP_STORED, 0.5, "Bad CRC-32"),
        (zipfile.ZIP_DEFLATED, 0.5, "Bad CRC-32"),
        (zipfile.ZIP_DEFLATED, 0.0, "while decompressing"),  # broken deflate stream: zlib.error
    ],
    ids=["stored-crc", "deflated-crc", "deflated-zlib"],
)
def test_corrupt_member_data_is_caught_on_read(
    tmp_path: Path, dest: Path, compression: int, where: float, detail: str
) -> None:
    # The good first member is written before the bad one is read: it must be removed again.
    body = b"".join(b"feature %d\n" % i for i in range(5000))
    data = zip_bytes([("a/first.txt", b"fine"), ("bad.dbf", body)], compression)
    second = central_records(data)[1]
    (offset,) = struct.unpack_from("<L", data, second + CD_OFFSET)
    (csize,) = struct.unpack_from("<L", data, second + CD_CSIZE)
    start = offset + 30 + len("bad.dbf") + int(csize * where)
    flipped = bytearray(data)
    for i in range(start, start + 4):
        flipped[i] ^= 0xFF
    archive = tmp_path / "crc.zip"
    archive.write_bytes(bytes(flipped))
    assert detail in refuse(archive, dest, "not_a_zip").render("en")


def test_encrypted_entry(tmp_path: Path, dest: Path) -> None:
    data = zip_bytes([("secret.shp", b"x" * 100)], zipfile.ZIP_STORED)
    data = patch(data, LH_FLAGS, "<H", 0x1)
    data = patch(data, central_records(data)[0] + CD_FLAGS, "<H", 0x1)
    archive = tmp_path / "locked.zip"
    archive.write_bytes(data)
    assert "encrypted" in refuse(archive, dest, "not_a_zip").render("en")


def test_duplicate_names(tmp_path: Path, dest: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = write_zip(tmp_path / "dup.zip", [("a.shp", b"one"), ("a.shp", b"two")])
    refuse(archive, dest, "not_a_zip")


def test_file_and_folder_clash(tmp_path: Path, dest: Path) -> None:
    archive = write_zip(tmp_path / "clash.zip", [("a", b"file"), ("a/b.shp", b"inside")])
    refuse(archive, dest, "not_a_zip")


# --- unsafe entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "/abs.txt",
        "//server/share/evil.txt",
        "C:/evil.txt",
        "C:evil.txt",
        "c:\\windows\\evil.txt",
        "\\abs.txt",
        "..\\evil.txt",
        "a\\..\\..\\evil.txt",
    ],
)
def test_zip_slip(tmp_path: Path, dest: Path, entry: str) -> None:
    archive = write_zip(tmp_path / "slip.zip", [("ok.txt", b"ok"), (entry, b"pwned")])
    exc = refuse(archive, dest, "zip_unsafe_path")
    assert exc.params["entry"] == entry
    assert not (tmp_path / "evil.txt").exists()


def test_symlink(tmp_path: Path, dest: Path) -> None:
    link = zipfile.ZipInfo("成果/link.shp")
    link.create_system = 3  # Unix
    link.external_attr = 0o120777 << 16
    archive = write_zip(tmp_path / "link.zip", [("ok.txt", b"ok"), (link, b"/etc/passwd")])
    assert refuse(archive, dest, "zip_symlink").params["entry"] == "成果/link.shp"


@pytest.mark.parametrize(
    "entry",
    ["inner.zip", "x.7z", "x.rar", "x.gz", "x.tar", "x.tgz", "x.bz2", "x.xz", "a/B.ZIP", "x.tar.gz"],
)
def test_nested_archive_by_name(tmp_path: Path, dest: Path, entry: str) -> None:
    archive = write_zip(tmp_path / "nested.zip", [("ok.txt", b"ok"), (entry, b"whatever")])
    assert refuse(archive, dest, "zip_nested").params["entry"] == entry


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("x.shp")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        zip_bytes([("inner.shp", b"x" * 100)]),
        gzip.compress(b"x" * 100),
        bz2.compress(b"x" * 100),
        lzma.compress(b"x" * 100),
        _tar(),
        b"7z\xbc\xaf\x27\x1c" + bytes(100),
        b"Rar!\x1a\x07\x01\x00" + bytes(100),
    ],
    ids=["zip", "gzip", "bz2", "xz", "tar", "7z", "rar"],
)
def test_nested_archive_by_magic(tmp_path: Path, dest: Path, payload: bytes) -> None:
    # Renamed so only the content gives it away; the earlier member must be cleaned up.
    archive = write_zip(tmp_path / "renamed.zip", [("a/first.txt", b"ok"), ("roads.dat", payload)])
    assert refuse(archive, dest, "zip_nested").params["entry"] == "roads.dat"


# --- limits and bombs --------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "limit"), [(2001, None), (6, 5)])
def test_too_many_entries(tmp_path: Path, dest: Path, count: int, limit: int | None) -> None:
    archive = write_zip(
        tmp_path / "many.zip", [(f"f{i}.txt", b"") for i in range(count)], zipfile.ZIP_STORED
    )
    limits = None if limit is None else ArchiveLimits(max_entries=limit)
    exc = refuse(archive, dest, "zip_too_many", limits)
    assert exc.params == {"file": "many.zip", "count": count, "limit": limit or 2000}


def test_declared_total_too_big(tmp_path: Path, dest: Path) -> None:
    rnd = random.Random(2)
    entries = [("a.shp", rnd.randbytes(3000)), ("b.dbf", rnd.randbytes(3000))]
    archive = write_zip(tmp_path / "big.zip", entries)
    exc = refuse(archive, dest, "zip_too_big", ArchiveLimits(max_total_bytes=5000))
    assert exc.params["limit"] == 5000


def test_bomb_ratio(bomb: Path, dest: Path) -> None:
    exc = refuse(bomb, dest, "zip_ratio", ArchiveLimits(max_ratio=200))
    assert exc.params["entry"] == "bomb.shp"
    assert exc.params["ratio"] > 200
    refuse(bomb, dest, "zip_ratio")  # the default limits catch it too


def test_lying_declared_size(bomb: Path, tmp_path: Path, dest: Path) -> None:
    # The directory says 1000 bytes (so neither ratio nor total checks fire) but the data
    # inflates to 50 MB. The stream must stop near 1000 bytes, not write 50 MB, and refuse.
    data = bomb.read_bytes()
    data = patch(data, 22, "<L", 1000)  # local header uncompressed size
    data = patch(data, central_records(data)[0] + CD_USIZE, "<L", 1000)
    liar = tmp_path / "liar.zip"
    liar.write_bytes(data)
    # CPython's reader itself stops at the declared size, so this shows up as a CRC mismatch.
    assert "CRC" in refuse(liar, dest, "not_a_zip").render("en")


def test_streaming_counter_does_not_trust_the_reader(
    tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Should a reader ever yield more than the declared size (another zip implementation,
    # a future change), our own byte counter must stop it.
    entries = [("a/first.txt", b"ok"), ("b.shp", bytes(1000))]
    archive = write_zip(tmp_path / "counter.zip", entries)

    def open_too_much(self: zipfile.ZipFile, info: zipfile.ZipInfo, *args: object, **kw: object):
        return io.BytesIO(b"\x01" * (info.file_size + 3 * MiB))

    monkeypatch.setattr(zipfile.ZipFile, "open", open_too_much)
    refuse(archive, dest, "zip_too_big")
