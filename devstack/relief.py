"""The reference processing service's transformation: a photo becomes a preview JPEG and a GLB relief of it.

Small on purpose: the point is real bytes that a viewer and the Khronos validator accept, not a good 3D model.
"""

from __future__ import annotations

import io
import json
import math
import struct

from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

register_heif_opener()

PREVIEW_LONGEST_SIDE = 512
# At most this many vertices along the longer side: 64 x 64 stays within 16-bit indices and under 200 KB.
GRID_LONGEST_SIDE = 64
# How far the brightest pixel stands out of the plane, as a share of the longer side.
RELIEF_DEPTH = 0.08

FLOAT, UNSIGNED_SHORT = 5126, 5123
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
LINEAR, CLAMP_TO_EDGE = 9729, 33071
GLB_MAGIC, GLB_VERSION = b"glTF", 2
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942


def preview_jpeg(photo: bytes) -> tuple[bytes, Image.Image]:
    """The photo upright (its EXIF orientation applied), flattened onto white, longest side at most 512 px, as a
    JPEG; also the image itself for the relief."""
    with Image.open(io.BytesIO(photo)) as opened:
        upright = ImageOps.exif_transpose(opened)
        upright.load()
    if upright.mode in ("RGBA", "LA", "P", "PA"):
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
    else:
        flat = upright.convert("RGB")
    flat.thumbnail((PREVIEW_LONGEST_SIDE, PREVIEW_LONGEST_SIDE))
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=85)
    return out.getvalue(), flat


class HeightField:
    """Luminance sampled on a grid no larger than 64 vertices a side, keeping the image's aspect ratio."""

    def __init__(self, image: Image.Image):
        width, height = image.size
        scale = (GRID_LONGEST_SIDE - 1) / max(width, height)
        self.columns = max(2, round(width * scale) + 1)
        self.rows = max(2, round(height * scale) + 1)
        grey = image.convert("L").resize((self.columns, self.rows), Image.Resampling.BILINEAR)
        self.levels = [value / 255 for value in grey.getdata()]
        # World units: the longer side spans 1.0, centred on the origin, facing +Z with +Y up.
        longer = max(self.columns, self.rows) - 1
        self.spacing = 1.0 / longer
        self.width = (self.columns - 1) * self.spacing
        self.height = (self.rows - 1) * self.spacing

    def z(self, row: int, column: int) -> float:
        row = min(max(row, 0), self.rows - 1)
        column = min(max(column, 0), self.columns - 1)
        return self.levels[row * self.columns + column] * RELIEF_DEPTH

    def positions(self) -> list[tuple[float, float, float]]:
        return [(column * self.spacing - self.width / 2, self.height / 2 - row * self.spacing, self.z(row, column))
                for row in range(self.rows) for column in range(self.columns)]

    def normals(self) -> list[tuple[float, float, float]]:
        """The surface's normals from central differences of the heights (one-sided at the edges)."""
        found = []
        for row in range(self.rows):
            for column in range(self.columns):
                left, right = max(column - 1, 0), min(column + 1, self.columns - 1)
                up, down = max(row - 1, 0), min(row + 1, self.rows - 1)
                dz_dx = (self.z(row, right) - self.z(row, left)) / ((right - left) * self.spacing)
                # Rows grow downwards while Y grows upwards.
                dz_dy = (self.z(up, column) - self.z(down, column)) / ((down - up) * self.spacing)
                length = math.sqrt(dz_dx * dz_dx + dz_dy * dz_dy + 1.0)
                found.append((-dz_dx / length, -dz_dy / length, 1.0 / length))
        return found

    def texcoords(self) -> list[tuple[float, float]]:
        # glTF's UV origin is the image's top-left corner, as row 0 is.
        return [(column / (self.columns - 1), row / (self.rows - 1))
                for row in range(self.rows) for column in range(self.columns)]

    def triangles(self) -> list[int]:
        """Two counter-clockwise triangles (seen from +Z) per grid cell."""
        indices = []
        for row in range(self.rows - 1):
            for column in range(self.columns - 1):
                top_left = row * self.columns + column
                bottom_left = top_left + self.columns
                indices += [top_left, bottom_left, bottom_left + 1, top_left, bottom_left + 1, top_left + 1]
        return indices


class BinaryChunk:
    """The GLB's BIN chunk, built one 4-byte-aligned buffer view at a time."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []

    def add(self, payload: bytes, target: int | None = None) -> int:
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.data += payload + bytes(-len(payload) % 4)
        self.views.append(view)
        return len(self.views) - 1


def relief_glb(preview: bytes, image: Image.Image) -> bytes:
    """A textured relief of the image: a grid mesh whose heights follow its luminance, the preview as its texture."""
    field = HeightField(image)
    positions, normals, texcoords = field.positions(), field.normals(), field.texcoords()
    indices = field.triangles()
    chunk = BinaryChunk()
    position_view = chunk.add(b"".join(struct.pack("<3f", *p) for p in positions), ARRAY_BUFFER)
    normal_view = chunk.add(b"".join(struct.pack("<3f", *n) for n in normals), ARRAY_BUFFER)
    texcoord_view = chunk.add(b"".join(struct.pack("<2f", *t) for t in texcoords), ARRAY_BUFFER)
    index_view = chunk.add(struct.pack(f"<{len(indices)}H", *indices), ELEMENT_ARRAY_BUFFER)
    image_view = chunk.add(preview)
    # The accessor bounds must be those of the float32 values stored, not of the doubles computed.
    stored = [struct.unpack("<3f", struct.pack("<3f", *p)) for p in positions]
    document = {
        "asset": {"version": "2.0", "generator": "3D Ultra reference processing service"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "relief"}],
        "meshes": [{"name": "relief", "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "material": 0, "mode": 4,
        }]}],
        "materials": [{"name": "photo", "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 1.0,
        }}],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [{"magFilter": LINEAR, "minFilter": LINEAR, "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}],
        "images": [{"bufferView": image_view, "mimeType": "image/jpeg"}],
        "accessors": [
            {"bufferView": position_view, "componentType": FLOAT, "count": len(positions), "type": "VEC3",
             "min": [min(p[axis] for p in stored) for axis in range(3)],
             "max": [max(p[axis] for p in stored) for axis in range(3)]},
            {"bufferView": normal_view, "componentType": FLOAT, "count": len(normals), "type": "VEC3"},
            {"bufferView": texcoord_view, "componentType": FLOAT, "count": len(texcoords), "type": "VEC2"},
            {"bufferView": index_view, "componentType": UNSIGNED_SHORT, "count": len(indices), "type": "SCALAR"},
        ],
        "bufferViews": chunk.views,
        "buffers": [{"byteLength": len(chunk.data)}],
    }
    return glb_container(json.dumps(document, separators=(",", ":")).encode(), bytes(chunk.data))


def glb_container(document: bytes, binary: bytes) -> bytes:
    """The GLB framing: a 12-byte header, then the JSON chunk (padded with spaces) and the BIN chunk (zeros)."""
    document += b" " * (-len(document) % 4)
    binary += bytes(-len(binary) % 4)
    total = 12 + 8 + len(document) + 8 + len(binary)
    return (GLB_MAGIC + struct.pack("<II", GLB_VERSION, total)
            + struct.pack("<II", len(document), JSON_CHUNK) + document
            + struct.pack("<II", len(binary), BIN_CHUNK) + binary)
