"""Schemathesis against the live API with its own OpenAPI document: the checks schemathesis.toml chooses (every one
but its listed exclusions), stateful links included, from a fixed seed; FUZZ_SEED=<n> replays another run."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "schemathesis.toml"


def test_schemathesis_finds_no_5xx_no_spec_violation_and_no_accepted_invalid_input(live_server, output_dir):
    examples = os.environ.get("FUZZ_MAX_EXAMPLES", "25")
    seed = os.environ.get("FUZZ_SEED") or str(tomllib.loads(CONFIG.read_text())["seed"])
    # No --checks: on the command line it would replace the choice made in schemathesis.toml.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG), "run",
         str(ROOT / "chalicelib" / "openapi.json"), "--url", live_server, "--seed", seed,
         "--max-examples", examples, "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    Path(output_dir, "schemathesis.txt").write_text(result.stdout + result.stderr)
    summary = re.search(r"(\d+) generated, (.*)", result.stdout)
    replay = f"seed {seed}: replay with FUZZ_SEED={seed} FUZZ_MAX_EXAMPLES={examples}"

    print(f"\nschemathesis: {summary.group(0) if summary else 'no summary'} ({replay})")
    assert f"Seed: {seed}" in result.stdout, f"schemathesis did not use {replay}"
    assert result.returncode == 0, f"{replay}\n{result.stdout[-4000:]}"
    assert summary and int(summary.group(1)) > 100, replay
