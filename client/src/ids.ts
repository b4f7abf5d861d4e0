// Idempotency keys. crypto.randomUUID exists only in secure contexts (https, localhost): a phone testing a dev
// server at http://192.168.x.x has crypto.getRandomValues but no randomUUID, and must still send a key.

interface CryptoLike {
  randomUUID?: () => string;
  getRandomValues?: (array: Uint8Array) => Uint8Array;
}

/** A random (version 4) UUID, from crypto.randomUUID where present, else from crypto.getRandomValues. */
export function randomId(crypto: CryptoLike | undefined = (globalThis as { crypto?: CryptoLike }).crypto): string {
  if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  if (!crypto || typeof crypto.getRandomValues !== "function") {
    throw new Error("3d-ultra: this browser has no crypto.getRandomValues, so no upload key can be made");
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
