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


EXAMPLE = CLIENT.parent / "examples" / "react-vite"


def test_the_example_lockfile_pins_no_hash_of_the_locally_built_tarball():
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    local = {path: entry for path, entry in lock["packages"].items()
             if str(entry.get("resolved", "")).startswith("file:")}

    assert set(local) == {"node_modules/@3d-ultra/upload-client"}
    assert [path for path, entry in local.items() if "integrity" in entry] == [], (
        "examples/react-vite/package-lock.json pins the hash of the client's tarball, which changes with client/src:"
        " run `make example-lock` and commit the lockfile")


def test_a_change_to_the_clients_source_still_installs_and_builds_the_example_from_its_tarball(tmp_path):
    """What a fresh machine meets after any change to client/src: the tarball's bytes change, and the example's
    `npm ci` must take them as they are (neither refuse them nor take an older copy from the npm cache)."""
    client = tmp_path / "client"
    shutil.copytree(CLIENT, client, ignore=shutil.ignore_patterns("node_modules", "dist", "*.tgz"))
    (client / "node_modules").symlink_to(CLIENT / "node_modules")
    marker = f"changed-{tmp_path.name}"
    with open(client / "src" / "index.ts", "a") as source:
        source.write(f'\nexport const sourceChangeMarker = "{marker}";\n')
    example = tmp_path / "examples" / "react-vite"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("node_modules", "dist"))

    assert npm("pack", "--loglevel=error", cwd=client).returncode == 0
    installed = npm("ci", "--no-audit", "--no-fund", "--prefer-offline", cwd=example)
    assert installed.returncode == 0, "npm ci refused the example's lockfile with the client's new tarball"
    shipped = example / "node_modules" / "@3d-ultra" / "upload-client" / "dist" / "index.js"
    assert marker in shipped.read_text(), "npm ci installed an older build of the client than the tarball's"
    assert npm("run", "--silent", "build", cwd=example).returncode == 0
