"""Fail if a secret value is committed or baked into a generated template."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from chalicelib.config import SECRET_NAMES

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "PostHog project key": re.compile(r"\bphc_[A-Za-z0-9]{32,}\b"),
    "credential assigned a long literal": re.compile(
        r"(?i)(secret|password|api_key|access_key)[\w\"']*\s*[:=]\s*[\"'](?!/)[A-Za-z0-9/+=_-]{32,}[\"']"),
    # A password in a URL, unless it is a placeholder or the host is plainly local or a reserved example domain.
    "password in a URL": re.compile(
        r"\b[a-z][a-z0-9+]*://[^\s/:@\"']+:(?!(pass|password|secret)@)[^\s@\"'/]+@"
        r"(?!127\.0\.0\.1|localhost|[^\s/\"']*\.example\b)[^\s/\"']+"),
}


def scan_text(text: str) -> list[str]:
    """Names of the secret patterns found in a text."""
    return [name for name, pattern in PATTERNS.items() if pattern.search(text)]


def scan_template(template: dict) -> list[str]:
    """Secret settings given as literal environment values instead of SSM parameter names."""
    problems = []
    for name, resource in template.get("Resources", {}).items():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for secret in SECRET_NAMES:
            if secret in variables:
                problems.append(f"{name}: {secret} is set literally; give {secret}_SSM_PARAMETER instead")
    return problems


def main(argv: list[str]) -> int:
    """Scan every tracked file and the given templates; print findings and exit 1 if any."""
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    findings = []
    for path in [*tracked, *argv]:
        file = Path(path)
        if not file.is_file() or file.stat().st_size > 2_000_000:
            continue
        text = file.read_text(errors="replace")
        findings += [f"{path}: {name}" for name in scan_text(text)]
        if path in argv:
            findings += [f"{path}: {problem}" for problem in scan_template(json.loads(text))]
    for finding in findings:
        print(finding)
    print(f"secret scan: {len(tracked)} tracked files and {len(argv)} template(s), {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
