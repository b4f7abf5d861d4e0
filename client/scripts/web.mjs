// The served pages' modules (chalicelib/web/*.js) are compiled from this package's source: the page scripts
// (src/*-page.ts) and the library modules they import, one browser ES module per source file.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLIENT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const WEB_DIR = join(CLIENT_DIR, "..", "chalicelib", "web");
const TSC = join(CLIENT_DIR, "node_modules", "typescript", "bin", "tsc");

/** Compile the pages' modules: Map of file name to contents, each with a banner naming its source. */
export function buildWebModules() {
  const out = mkdtempSync(join(tmpdir(), "3d-ultra-web-"));
  try {
    execFileSync(process.execPath, [TSC, "-p", join(CLIENT_DIR, "tsconfig.web.json"), "--outDir", out],
      { stdio: "inherit" });
    const modules = new Map();
    for (const name of readdirSync(out).filter((entry) => entry.endsWith(".js")).sort()) {
      const source = `client/src/${name.replace(/\.js$/, ".ts")}`;
      const banner = `// Built from ${source} by \`npm run build:web\` in client/: edit the source, not this file.\n`;
      modules.set(name, banner + readFileSync(join(out, name), "utf8"));
    }
    return modules;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The .js files now in chalicelib/web: Map of file name to contents. */
export function committedWebModules() {
  return new Map(readdirSync(WEB_DIR).filter((entry) => entry.endsWith(".js")).sort()
    .map((name) => [name, readFileSync(join(WEB_DIR, name), "utf8")]));
}
