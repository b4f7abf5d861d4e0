"""Real image bytes made on the spot (no binary fixtures in the repository)."""

import os
import struct
import zlib


def png_bytes(width: int = 4, height: int = 4, *, noise: bool = False, color=(200, 80, 40)) -> bytes:
    """A valid RGB PNG of the given size; random pixels (`noise`) make it about 3 bytes a pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    pixels = (lambda: os.urandom(width * 3)) if noise else (lambda: bytes(color) * width)
    rows = b"".join(b"\x00" + pixels() for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))


# The smallest real photo: the confirm checks the first bytes, so tests upload a real PNG, never filler.
SMALL_PNG = png_bytes(1, 1)


def pillow_bytes(image_format: str, width: int = 8, height: int = 8) -> bytes:
    """A real image file written by Pillow: "JPEG", "WEBP", "GIF", ..."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, image_format)
    return out.getvalue()


def heic_header(brand: bytes = b"heic", total: int = 200) -> bytes:
    """The start of a HEIC file: its ISO-BMFF `ftyp` box (major brand, minor version, compatible brands), then
    the bytes of the boxes that follow (filler here; the confirm only reads the first bytes)."""
    brands = brand + b"\x00\x00\x00\x00" + b"mif1heic"
    box = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands
    return box + bytes(total - len(box))


def zip_bytes() -> bytes:
    """A real ZIP archive."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.png", "not really")
    return out.getvalue()
