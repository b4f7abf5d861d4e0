// npm run check:types: fail when src/generated/openapi.ts differs from what openapi-typescript makes of
// chalicelib/openapi.json now (regenerate with `npm run generate:types`).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { CLIENT_DIR } from "./web.mjs";

const out = mkdtempSync(join(tmpdir(), "3d-ultra-openapi-"));
try {
  const fresh = join(out, "openapi.ts");
  execFileSync(process.execPath, [join(CLIENT_DIR, "node_modules", "openapi-typescript", "bin", "cli.js"),
    join(CLIENT_DIR, "..", "chalicelib", "openapi.json"), "-o", fresh], { stdio: "pipe" });
  const committed = readFileSync(join(CLIENT_DIR, "src", "generated", "openapi.ts"), "utf8");
  if (readFileSync(fresh, "utf8") !== committed) {
    console.error("src/generated/openapi.ts differs from chalicelib/openapi.json: run `npm run generate:types`.");
    process.exit(1);
  }
  console.log("src/generated/openapi.ts matches chalicelib/openapi.json");
} finally {
  rmSync(out, { recursive: true, force: true });
}
