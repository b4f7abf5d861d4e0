// The served pages' modules (chalicelib/web/*.js) are compiled from this package's source: the page scripts
// (src/*-page.ts) and the library modules they import, one browser ES module per source file; and the 3D viewer,
// @google/model-viewer's own bundle (three.js included) from node_modules, which the processing page imports
// when a model is ready.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLIENT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const WEB_DIR = join(CLIENT_DIR, "..", "chalicelib", "web");
const TSC = join(CLIENT_DIR, "node_modules", "typescript", "bin", "tsc");
const MODEL_VIEWER = join(CLIENT_DIR, "node_modules", "@google", "model-viewer");

/** model-viewer.js: the package's minified ES module bundle, without its source-map comment (no map is served). */
function modelViewerModule() {
  const { version } = JSON.parse(readFileSync(join(MODEL_VIEWER, "package.json"), "utf8"));
  const bundle = readFileSync(join(MODEL_VIEWER, "dist", "model-viewer.min.js"), "utf8")
    .replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");
  return `// @google/model-viewer ${version} (dist/model-viewer.min.js, three.js included), copied by \`npm run build:web\` `
    + "in client/ from its npm package: update the package, not this file.\n" + bundle;
}

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
    modules.set("model-viewer.js", modelViewerModule());
    return new Map([...modules].sort(([a], [b]) => a.localeCompare(b)));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The .js files now in chalicelib/web: Map of file name to contents. */
export function committedWebModules() {
  return new Map(readdirSync(WEB_DIR).filter((entry) => entry.endsWith(".js")).sort()
    .map((name) => [name, readFileSync(join(WEB_DIR, name), "utf8")]));
}
