"""Schemathesis against the live API with its own OpenAPI document: every check, stateful links included."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_schemathesis_finds_no_5xx_no_spec_violation_and_no_accepted_invalid_input(live_server, output_dir):
    examples = os.environ.get("FUZZ_MAX_EXAMPLES", "25")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", str(ROOT / "chalicelib" / "openapi.json"),
         "--url", live_server, "--checks", "all", "--max-examples", examples, "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    Path(output_dir, "schemathesis.txt").write_text(result.stdout + result.stderr)
    summary = re.search(r"(\d+) generated, (.*)", result.stdout)

    print(f"\nschemathesis: {summary.group(0) if summary else 'no summary'}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert summary and int(summary.group(1)) > 100
