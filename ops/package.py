"""`make package`: `chalice package` a stage into build/<stage>, then lint the template and scan for secrets."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage_environment(stage: str) -> dict[str, str]:
    """The stage's environment variables from .chalice/config.json.

    Packaging imports app.py, which reads and validates its settings at import (ALLOWED_ORIGINS among them), so
    the packager needs the same values the function will have.
    """
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage].get("environment_variables", {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="prod")
    stage = parser.parse_args().stage
    out = ROOT / "build" / stage
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **stage_environment(stage)}
    env.setdefault("AWS_DEFAULT_REGION", "eu-central-1")  # chalice needs a region to name ARNs; none is called
    steps = [
        [str(bin_dir / "chalice"), "package", "--stage", stage, str(out)],
        [str(bin_dir / "cfn-lint"), str(out / "sam.json")],
        [sys.executable, "-m", "ops.secrets_scan", str(out / "sam.json")],
    ]
    for step in steps:
        print("+ " + " ".join(step[1:] if step[0] == sys.executable else [Path(step[0]).name, *step[1:]]), flush=True)
        result = subprocess.run(step, cwd=ROOT, env=env)
        if result.returncode != 0:
            return result.returncode
    template = json.loads((out / "sam.json").read_text())
    print(f"{out.relative_to(ROOT)}: {(out / 'deployment.zip').stat().st_size / 1e6:.1f} MB deployment.zip, resources:")
    for name, resource in template["Resources"].items():
        print(f"  {name}: {resource['Type']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
