"""`make sweep`: run the abandoned-upload sweep of a deployed stage now, and fail if it failed.

    python -m ops.sweep --stage prod --region eu-central-1

The payload is `{}`: the function fills in what Chalice's scheduled wrapper reads and marks the run as manual.
"""

from __future__ import annotations

import argparse
import sys

from ops.deploy import REGION, DeployError, execute, invoke_step
from ops.package import ROOT, function_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    if not REGION.match(args.region):
        print(f"--region {args.region!r} is not an AWS region name (e.g. eu-central-1)", file=sys.stderr)
        return 2
    (ROOT / "build").mkdir(exist_ok=True)
    try:
        execute([invoke_step("run the sweep (fails on FunctionError)", function_names(args.stage)["ExpireAbandoned"],
                             args.region, ROOT / "build" / f"sweep-{args.stage}-response.json",
                             capture="SweepInvoke")], stage=args.stage)
    except DeployError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    print((ROOT / "build" / f"sweep-{args.stage}-response.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
