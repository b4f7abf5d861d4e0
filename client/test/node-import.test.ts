// Both entry points load in plain Node (server rendering) through the package's exports map, printing nothing.
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, expect, test } from "vitest";

const CLIENT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

beforeAll(() => {
  execFileSync(process.execPath, [join(CLIENT_DIR, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    { cwd: CLIENT_DIR });
}, 60000);

function runNode(script: string): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr } = spawnSync(process.execPath, ["--input-type=module", "-e", script],
    { cwd: CLIENT_DIR, encoding: "utf8" });
  return { status, stdout, stderr };
}

test("both entry points import in Node with no output, and the session getters answer null", () => {
  const script = `
    const root = await import("@3d-ultra/upload-client");
    const react = await import("@3d-ultra/upload-client/react");
    const ok = typeof root.createClient === "function" && typeof react.useUpload === "function"
      && typeof react.useJob === "function" && root.getSession("job1") === null && root.getCurrentJob() === null
      && root.storeSession("job1", "t") === null;
    root.clearSession("job1");
    root.createClient({ baseUrl: "http://127.0.0.1:8000" });
    if (!ok) process.exit(3);
  `;
  expect(runNode(script)).toEqual({ status: 0, stdout: "", stderr: "" });
});

test("a missing token in Node is a rejected promise, not a throw", () => {
  const script = `
    const { createClient, MissingSessionError } = await import("@3d-ultra/upload-client");
    const pending = createClient({ baseUrl: "" }).getJob("job1");
    const error = await pending.catch((e) => e);
    if (!(error instanceof MissingSessionError) || error.code !== "NO_SESSION") process.exit(4);
  `;
  expect(runNode(script)).toEqual({ status: 0, stdout: "", stderr: "" });
});
