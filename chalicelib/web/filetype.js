// Built from client/src/filetype.ts by `npm run build:web` in client/: edit the source, not this file.
// A photo's type from its first bytes (the signatures the server checks), then its declared type, then its
// extension. Many browsers give iPhone photos (.heic/.heif) an empty or unexpected `type`.
export const IMAGE_TYPES = Object.freeze(["image/jpeg", "image/png", "image/webp", "image/heic"]);
// ISO-BMFF brands of HEIC/HEIF still images and sequences.
const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"]);
const EXTENSIONS = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", heic: "image/heic", heif: "image/heic",
};
const DECLARED = { "image/heif": "image/heic", "image/jpg": "image/jpeg" };
export const SNIFF_BYTES = 32;
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
function ascii(bytes, start, end) {
    return String.fromCharCode(...bytes.subarray(start, end));
}
/** The accepted image type that a file's first bytes show, or null. */
export function typeFromBytes(bytes) {
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff)
        return "image/jpeg";
    if (bytes.length >= 8 && PNG.every((value, index) => bytes[index] === value))
        return "image/png";
    if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP")
        return "image/webp";
    if (bytes.length >= 12 && ascii(bytes, 4, 8) === "ftyp") {
        const boxSize = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
        const brands = [ascii(bytes, 8, 12)];
        // Compatible brands follow the minor version, up to the end of the box (or of what was read).
        for (let at = 16; at + 4 <= Math.min(boxSize, bytes.length); at += 4)
            brands.push(ascii(bytes, at, at + 4));
        if (brands.some((brand) => HEIF_BRANDS.has(brand)))
            return "image/heic";
    }
    return null;
}
/** The type to declare for a file: what its bytes show, else its own type, else its extension; "" if none. */
export function decideType(bytes, declaredType, name) {
    const sniffed = typeFromBytes(bytes);
    if (sniffed)
        return sniffed;
    const declared = (declaredType && DECLARED[declaredType]) || declaredType || "";
    if (declared)
        return declared;
    const extension = (String(name ?? "").split(".").pop() ?? "").toLowerCase();
    return EXTENSIONS[extension] ?? "";
}
/** Whether `type` is one the API accepts. */
export function isImageType(type) {
    return IMAGE_TYPES.includes(type);
}
/** Read a file's first bytes: the type to declare and whether the bytes show it. */
export async function detectType(file) {
    const bytes = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer());
    return { type: decideType(bytes, file.type, file.name), recognised: typeFromBytes(bytes) !== null };
}
