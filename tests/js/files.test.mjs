import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { decideType, typeFromBytes } from "../../chalicelib/web/filetype.js";
import { describeFailure, rateLimitMessage } from "../../chalicelib/web/messages.js";
import { checkFile } from "../../chalicelib/web/upload.js";
import { ApiError } from "../../chalicelib/web/api.js";

const bytes = (...parts) => new Uint8Array(parts.flatMap((part) => (typeof part === "string"
  ? [...part].map((c) => c.charCodeAt(0)) : part)));
// An ISO-BMFF ftyp box: size, "ftyp", major brand, minor version, compatible brands.
const ftyp = (major, ...compatible) => bytes([0, 0, 0, 16 + 4 * compatible.length], "ftyp", major, [0, 0, 0, 0],
  ...compatible);

describe("a photo's type from its first bytes", () => {
  test("each accepted format is recognised by its signature", () => {
    assert.equal(typeFromBytes(bytes([0xff, 0xd8, 0xff, 0xe0], "JFIF")), "image/jpeg");
    assert.equal(typeFromBytes(bytes([0x89], "PNG", [0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])), "image/png");
    assert.equal(typeFromBytes(bytes("RIFF", [1, 2, 3, 4], "WEBPVP8 ")), "image/webp");
    for (const brand of ["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"]) {
      assert.equal(typeFromBytes(ftyp(brand, "mif1")), "image/heic", brand);
    }
  });

  test("a HEIF brand among the compatible brands counts, other ISO-BMFF files do not", () => {
    assert.equal(typeFromBytes(ftyp("XXXX", "isom", "mif1")), "image/heic");
    assert.equal(typeFromBytes(ftyp("isom", "iso2", "mp41")), null);
    assert.equal(typeFromBytes(ftyp("avif", "avif")), null);
  });

  test("a GIF, text and a truncated PNG signature are not images we accept", () => {
    assert.equal(typeFromBytes(bytes("GIF89a", [0, 0])), null);
    assert.equal(typeFromBytes(bytes("hello world")), null);
    assert.equal(typeFromBytes(bytes([0x89], "PNG")), null);
  });

  test("an iPhone photo with an empty type is declared as HEIC", () => {
    assert.equal(decideType(ftyp("heic", "mif1", "heic"), "", "IMG_0001.HEIC"), "image/heic");
    assert.equal(decideType(ftyp("mif1", "heic"), "image/heif", "photo.heif"), "image/heic");
  });

  test("the bytes win over a wrong declared type or extension", () => {
    assert.equal(decideType(bytes([0xff, 0xd8, 0xff, 0xdb]), "image/png", "photo.png"), "image/jpeg");
  });

  test("unreadable bytes fall back to the declared type, then the extension", () => {
    assert.equal(decideType(bytes("????"), "image/png", "x.png"), "image/png");
    assert.equal(decideType(bytes("????"), "", "x.HEIF"), "image/heic");
    assert.equal(decideType(bytes("????"), "", "notes.txt"), "");
    assert.equal(decideType(bytes("????"), "text/plain", "notes.txt"), "text/plain");
  });
});

describe("messages a person understands", () => {
  test("server validation messages become sentences tied to their field", () => {
    assert.deepEqual(describeFailure(new ApiError(400, "VALIDATION_ERROR", "email: not a valid email address (x).")),
      { field: "email", message: "Please enter a valid email address, like name@example.com." });
    assert.deepEqual(describeFailure(new ApiError(400, "VALIDATION_ERROR", "fileType: must be one of a, b.")),
      { field: "photo", message: "Please choose a JPEG, PNG, WebP or HEIC image." });
    assert.deepEqual(describeFailure(new ApiError(400, "VALIDATION_ERROR", "fileSize: must be between 1 and 9 bytes."),
      { maxBytes: 20971520 }),
    { field: "photo", message: "That photo's size can't be uploaded. The limit is 20 MB. Please choose another." });
  });

  test("a 429 says how many minutes to wait, from Retry-After", () => {
    assert.equal(rateLimitMessage(600), "Too many uploads right now. Please try again in 10 minutes.");
    assert.equal(rateLimitMessage(61), "Too many uploads right now. Please try again in 2 minutes.");
    assert.equal(rateLimitMessage(30), "Too many uploads right now. Please try again in 1 minute.");
    assert.equal(describeFailure(new ApiError(429, "RATE_LIMITED", "x", { retryAfter: 300 })).message,
      "Too many uploads right now. Please try again in 5 minutes.");
  });

  test("expiry and storage refusal have their own messages", () => {
    assert.match(describeFailure(new ApiError(410, "UPLOAD_EXPIRED", "x")).message, /expired/);
    assert.equal(describeFailure(new ApiError(403, "STORAGE_REFUSED", "x")).message,
      "We couldn't upload your photo. Let's try again!");
  });
});

describe("refusing a file before anything is sent", () => {
  const MAX = 20 * 1048576;
  const file = (size) => ({ size });

  test("a photo whose bytes show an accepted type passes", () => {
    assert.equal(checkFile(file(5000), MAX, { type: "image/heic", recognised: true }), null);
  });

  test("each refusal has its own sentence, in the order a person would fix them", () => {
    assert.equal(checkFile(null, MAX), "Choose a photo to upload.");
    assert.equal(checkFile(file(10), MAX, { type: "text/plain", recognised: false }),
      "Please choose a JPEG, PNG, WebP or HEIC image.");
    assert.equal(checkFile(file(0), MAX, { type: "image/png", recognised: false }),
      "That file is empty. Please choose another photo.");
    assert.equal(checkFile(file(21 * 1048576), MAX, { type: "image/png", recognised: true }),
      "That photo is 21.0 MB; the limit is 20 MB.");
    assert.equal(checkFile(file(10), MAX, { type: "image/png", recognised: false }),
      "This file doesn't look like a JPEG, PNG, WebP or HEIC photo inside. Please choose another photo.");
  });
});
