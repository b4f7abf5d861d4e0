"""`make sweep`: run the abandoned-upload sweep of a deployed stage now, and fail if it failed.

    python -m ops.sweep --stage prod --region eu-central-1

The payload is `{}`: the function fills in what Chalice's scheduled wrapper reads and marks the run as manual. The
invocation is sent once, and the CLI waits for it as long as the function may run (see ops/deploy.py's
invoke_step); if the hourly run holds the function's one reserved slot, it is tried again until that run ends.
"""

from __future__ import annotations

import argparse
import sys

from ops.deploy import REGION, DeployError, execute, invoke_step
from ops.package import ROOT, function_names, function_timeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    if not REGION.match(args.region):
        print(f"--region {args.region!r} is not an AWS region name (e.g. eu-central-1)", file=sys.stderr)
        return 2
    response = ROOT / "build" / f"sweep-{args.stage}-response.json"
    try:
        execute([invoke_step("run the sweep (fails on FunctionError)", function_names(args.stage)["ExpireAbandoned"],
                             args.region, response, capture="SweepInvoke",
                             timeout_seconds=function_timeout(args.stage, "ExpireAbandoned"))],
                stage=args.stage, region=args.region)
    except DeployError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    print(response.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
