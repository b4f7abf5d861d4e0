"""The client package (client/): its own checks run by npm, and its tarball installed the way an app installs it.

Each check is one test, so a failure names what failed: strict type check of source and tests, the generated
API types against chalicelib/openapi.json, the served pages' modules against a fresh build, the unit and hook
tests (vitest), the published API's compile-time expectations, and `npm pack`'s tarball installed and imported.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "client"


def npm(*args, cwd=CLIENT, timeout=300):
    executable = shutil.which("npm")
    assert executable, "npm is required for the client's tests (apt-get install npm; .ci/run installs it)"
    result = subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    print(result.stdout[-20000:], result.stderr[-5000:])
    return result


@pytest.mark.parametrize("script", ["typecheck", "check:types", "check:web", "test", "typecheck:api"])
def test_the_client_package_passes_its_check(script):
    result = npm("run", "--silent", script)

    assert result.returncode == 0, f"npm run {script} failed in client/; its output is above"


def test_npm_pack_gives_a_tarball_that_installs_and_imports_in_a_fresh_project(tmp_path):
    packed = npm("pack", "--json", "--pack-destination", str(tmp_path))
    assert packed.returncode == 0
    [summary] = json.loads(packed.stdout[packed.stdout.index("["):])
    files = {entry["path"] for entry in summary["files"]}
    print(f"tarball {summary['filename']}: {summary['size']} bytes packed, {summary['unpackedSize']} unpacked, "
          f"{len(files)} files")

    assert {"package.json", "dist/index.js", "dist/index.d.ts", "dist/react/index.js", "dist/react/index.d.ts"} <= files
    assert not any(path.startswith(("src/", "test/", "node_modules/")) for path in files)
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    installed = npm("install", "--offline", "--no-audit", "--no-fund", str(tmp_path / summary["filename"]), cwd=app)
    assert installed.returncode == 0
    manifest = json.loads((app / "node_modules" / "@3d-ultra" / "upload-client" / "package.json").read_text())
    assert manifest.get("dependencies", {}) == {}
    imported = subprocess.run(
        [shutil.which("node"), "--input-type=module", "-e",
         'const m = await import("@3d-ultra/upload-client"); console.log(Object.keys(m).includes("createClient"))'],
        cwd=app, capture_output=True, text=True, timeout=60)

    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "true\n", "")
