// npm run build:web: write the pages' modules into chalicelib/web, removing modules no source builds any more.

import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { WEB_DIR, buildWebModules, committedWebModules } from "./web.mjs";

const built = buildWebModules();
for (const name of committedWebModules().keys()) {
  if (!built.has(name)) rmSync(join(WEB_DIR, name));
}
for (const [name, contents] of built) writeFileSync(join(WEB_DIR, name), contents);
console.log(`chalicelib/web: ${built.size} modules`);
