// The example app installs this package from its packed tarball, as a front end would. The tarball is built here,
// so its bytes change with every change to src/: a lockfile that pinned its hash would fail `npm ci` on every new
// machine (and pass only where a warm npm cache still held the old tarball). This removes the hash of every local
// (`file:`) entry from a lockfile; `npm ci` installs such an entry from the file as it is now. Registry packages
// keep their hashes.
import { readFileSync, writeFileSync } from "node:fs";

const [lockfile] = process.argv.slice(2);
if (!lockfile) {
  console.error("usage: node unpin-local-lock.mjs path/to/package-lock.json");
  process.exit(2);
}
const lock = JSON.parse(readFileSync(lockfile, "utf8"));
let unpinned = 0;
for (const entry of Object.values(lock.packages ?? {})) {
  if (typeof entry.resolved === "string" && entry.resolved.startsWith("file:") && "integrity" in entry) {
    delete entry.integrity;
    unpinned += 1;
  }
}
writeFileSync(lockfile, JSON.stringify(lock, null, 2) + "\n");
console.log(`${lockfile}: ${unpinned} local hash(es) removed`);
