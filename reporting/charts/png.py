"""PNG bytes, with the standard library only: their size in pixels, and a lossless
recompression (vl-convert writes its PNGs with fast compression; at zlib's level 9 the same
pixels take about a third of the bytes, which matters for images embedded in Dagster's
metadata)."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG: the signature is missing")
    out, i = [], len(SIGNATURE)
    while i + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        out.append((kind, data[i + 8:i + 8 + length]))
        i += 12 + length
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the IHDR chunk."""
    kind, body = _chunks(data)[0]
    if kind != b"IHDR":
        raise ValueError("not a PNG: the first chunk is not IHDR")
    return struct.unpack(">II", body[:8])


def compact(data: bytes) -> bytes:
    """The same image, its pixel data recompressed at zlib's level 9 (lossless)."""
    chunks = _chunks(data)
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    out, written = [SIGNATURE], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if not written:
                out.append(_chunk(b"IDAT", zlib.compress(pixels, 9)))
                written = True
        else:
            out.append(_chunk(kind, body))
    return b"".join(out)
