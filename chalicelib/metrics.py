"""CloudWatch metrics as Embedded Metric Format fields on a log line: Lambda's log delivery turns them into
metrics, so emitting one costs no API call and no time in the request."""

from __future__ import annotations

import time

NAMESPACE = "3DUltra/Upload"  # the packaged template's alarms watch this namespace
_stage = "dev"


def configure(stage: str) -> None:
    """The stage every metric is recorded under (set once at start-up)."""
    global _stage
    _stage = stage


def emf(stage: str | None = None, **counts: float) -> dict:
    """Fields to pass as `extra=` so that the line also records `counts` (dimension: Stage)."""
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Stage"]],
                "Metrics": [{"Name": name, "Unit": "Count"} for name in counts],
            }],
        },
        "Stage": stage or _stage,
        **counts,
    }
