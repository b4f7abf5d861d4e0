import { describe, expect, test } from "vitest";

import { ApiError, checkFile, decideType, describeFailure, detectType, rateLimitMessage, typeFromBytes } from "../src/index.js";
import { heic, jpeg } from "./helpers.js";

const bytes = (...parts: (string | number[])[]): Uint8Array => new Uint8Array(parts.flatMap((part) => (typeof part === "string"
  ? [...part].map((c) => c.charCodeAt(0)) : part)));
// An ISO-BMFF ftyp box: size, "ftyp", major brand, minor version, compatible brands.
const ftyp = (major: string, ...compatible: string[]): Uint8Array => bytes([0, 0, 0, 16 + 4 * compatible.length], "ftyp",
  major, [0, 0, 0, 0], ...compatible);

describe("a photo's type from its first bytes", () => {
  test("each accepted format is recognised by its signature", () => {
    expect(typeFromBytes(bytes([0xff, 0xd8, 0xff, 0xe0], "JFIF"))).toBe("image/jpeg");
    expect(typeFromBytes(bytes([0x89], "PNG", [0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]))).toBe("image/png");
    expect(typeFromBytes(bytes("RIFF", [1, 2, 3, 4], "WEBPVP8 "))).toBe("image/webp");
    for (const brand of ["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"]) {
      expect(typeFromBytes(ftyp(brand, "mif1"))).toBe("image/heic");
    }
  });

  test("a HEIF brand among the compatible brands counts, other ISO-BMFF files do not", () => {
    expect(typeFromBytes(ftyp("XXXX", "isom", "mif1"))).toBe("image/heic");
    expect(typeFromBytes(ftyp("isom", "iso2", "mp41"))).toBeNull();
    expect(typeFromBytes(ftyp("avif", "avif"))).toBeNull();
  });

  test("a GIF, text and a truncated PNG signature are not images we accept", () => {
    expect(typeFromBytes(bytes("GIF89a", [0, 0]))).toBeNull();
    expect(typeFromBytes(bytes("hello world"))).toBeNull();
    expect(typeFromBytes(bytes([0x89], "PNG"))).toBeNull();
  });

  test("an iPhone photo with an empty type is declared as HEIC", async () => {
    expect(decideType(ftyp("heic", "mif1", "heic"), "", "IMG_0001.HEIC")).toBe("image/heic");
    expect(decideType(ftyp("mif1", "heic"), "image/heif", "photo.heif")).toBe("image/heic");
    expect(await detectType(heic())).toEqual({ type: "image/heic", recognised: true });
  });

  test("the bytes win over a wrong declared type or extension", async () => {
    expect(decideType(bytes([0xff, 0xd8, 0xff, 0xdb]), "image/png", "photo.png")).toBe("image/jpeg");
    expect(await detectType(jpeg(100, "photo.png", "image/png"))).toEqual({ type: "image/jpeg", recognised: true });
  });

  test("unreadable bytes fall back to the declared type, then the extension", () => {
    expect(decideType(bytes("????"), "image/png", "x.png")).toBe("image/png");
    expect(decideType(bytes("????"), "", "x.HEIF")).toBe("image/heic");
    expect(decideType(bytes("????"), "", "notes.txt")).toBe("");
    expect(decideType(bytes("????"), "text/plain", "notes.txt")).toBe("text/plain");
  });
});

describe("messages a person understands", () => {
  test("server validation messages become sentences tied to their field", () => {
    expect(describeFailure(new ApiError(400, "VALIDATION_ERROR", "email: not a valid email address (x).")))
      .toEqual({ field: "email", message: "Please enter a valid email address, like name@example.com." });
    expect(describeFailure(new ApiError(400, "VALIDATION_ERROR", "fileType: must be one of a, b.")))
      .toEqual({ field: "photo", message: "Please choose a JPEG, PNG, WebP or HEIC image." });
    expect(describeFailure(new ApiError(400, "VALIDATION_ERROR", "fileSize: must be between 1 and 9 bytes."),
      { maxBytes: 20971520 }))
      .toEqual({ field: "photo", message: "That photo's size can't be uploaded. The limit is 20 MB. Please choose another." });
  });

  test("a file refused before sending belongs to the photo field", () => {
    expect(describeFailure(new ApiError(0, "INVALID_FILE", "That file is empty. Please choose another photo.")))
      .toEqual({ field: "photo", message: "That file is empty. Please choose another photo." });
  });

  test("a 429 says how many minutes to wait, from Retry-After", () => {
    expect(rateLimitMessage(600)).toBe("Too many uploads right now. Please try again in 10 minutes.");
    expect(rateLimitMessage(61)).toBe("Too many uploads right now. Please try again in 2 minutes.");
    expect(rateLimitMessage(30)).toBe("Too many uploads right now. Please try again in 1 minute.");
    expect(describeFailure(new ApiError(429, "RATE_LIMITED", "x", { retryAfter: 300 })).message)
      .toBe("Too many uploads right now. Please try again in 5 minutes.");
  });

  test("expiry and storage refusal have their own messages", () => {
    expect(describeFailure(new ApiError(410, "UPLOAD_EXPIRED", "x")).message).toMatch(/expired/);
    expect(describeFailure(new ApiError(403, "STORAGE_REFUSED", "x")).message).toBe("We couldn't upload your photo. Let's try again!");
  });
});

describe("refusing a file before anything is sent", () => {
  const MAX = 20 * 1048576;
  const file = (size: number): Blob => new Blob([new Uint8Array(size)]);

  test("a photo whose bytes show an accepted type passes", () => {
    expect(checkFile(file(5000), MAX, { type: "image/heic", recognised: true })).toBeNull();
  });

  test("each refusal has its own sentence, in the order a person would fix them", () => {
    expect(checkFile(null, MAX, { type: "", recognised: false })).toBe("Choose a photo to upload.");
    expect(checkFile(file(10), MAX, { type: "text/plain", recognised: false })).toBe("Please choose a JPEG, PNG, WebP or HEIC image.");
    expect(checkFile(file(0), MAX, { type: "image/png", recognised: false })).toBe("That file is empty. Please choose another photo.");
    expect(checkFile(file(21 * 1048576), MAX, { type: "image/png", recognised: true })).toBe("That photo is 21.0 MB; the limit is 20 MB.");
    expect(checkFile(file(10), MAX, { type: "image/png", recognised: false }))
      .toBe("This file doesn't look like a JPEG, PNG, WebP or HEIC photo inside. Please choose another photo.");
  });
});
