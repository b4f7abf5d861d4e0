// npm run check:web: fail when chalicelib/web's modules differ from a fresh build of this package's source.

import { buildWebModules, committedWebModules } from "./web.mjs";

const built = buildWebModules();
const committed = committedWebModules();
const problems = [];
for (const [name, contents] of built) {
  if (!committed.has(name)) problems.push(`missing: chalicelib/web/${name}`);
  else if (committed.get(name) !== contents) problems.push(`differs from its source: chalicelib/web/${name}`);
}
for (const name of committed.keys()) {
  if (!built.has(name)) problems.push(`built from no source: chalicelib/web/${name}`);
}
if (problems.length) {
  console.error(`${problems.join("\n")}\nRun \`npm run build:web\` in client/ and commit the result.`);
  process.exit(1);
}
console.log(`chalicelib/web: ${built.size} modules match their source`);
