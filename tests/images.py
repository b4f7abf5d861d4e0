"""Real image bytes made on the spot (no binary fixtures in the repository)."""

import os
import struct
import zlib


def png_bytes(width: int = 4, height: int = 4, *, noise: bool = False) -> bytes:
    """A valid RGB PNG of the given size; random pixels (`noise`) make it about 3 bytes a pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    pixels = (lambda: os.urandom(width * 3)) if noise else (lambda: bytes([200, 80, 40]) * width)
    rows = b"".join(b"\x00" + pixels() for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))
