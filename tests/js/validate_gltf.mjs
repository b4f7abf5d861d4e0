// Prints the Khronos glTF validator's report (JSON) for the GLB file named on the command line.
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const bytes = new Uint8Array(await readFile(process.argv[2]));
const report = await validator.validateBytes(bytes, { maxIssues: 100 });
process.stdout.write(JSON.stringify(report, null, 2));
