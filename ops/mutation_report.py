"""`make mutation`: mutate the service's modules, run the fast tests against each mutant, score every module.

Which modules are mutated, and the test command, are in setup.cfg's [mutmut] section. A module's score is
(killed + timed out) / all of its mutants: a mutant no unit test reaches counts as a survivor. Mutants that
make no observable difference are marked where they stand with `# pragma: no mutate` (mutmut never creates
them). The run exits non-zero when any module scores under the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from textwrap import indent

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
# mutmut's own exit-code meanings (mutmut.stats.status_by_exit_code), reduced to what the score needs.
KILLED = {1, 3}
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def run_mutmut(max_children: int, log_path: Path) -> int:
    """Run every mutant; mutmut's progress spinner goes to a log file, not the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    mutmut = Path(sys.executable).with_name("mutmut")
    with log_path.open("w") as log:
        return subprocess.run([str(mutmut), "run", "--max-children", str(max_children)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode


def module_results() -> dict[str, dict[str, int]]:
    """{source path: {mutant name: exit code}} from the .meta files mutmut leaves beside each mutated module."""
    results = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = meta.relative_to(MUTANTS).as_posix()[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:  # a module with nothing to mutate (__init__.py) has no score
            results[source] = codes
    return results


def tally(exit_codes: dict[str, int]) -> dict:
    counts = {"mutants": len(exit_codes), "killed": 0, "timeout": 0, "survived": 0, "no_tests": 0, "other": 0}
    for code in exit_codes.values():
        if code in KILLED:
            counts["killed"] += 1
        elif code in TIMEOUT:
            counts["timeout"] += 1
        elif code in SURVIVED:
            counts["survived"] += 1
        elif code in NO_TESTS:
            counts["no_tests"] += 1
        else:  # not checked, suspicious, segfault: none of them is a kill
            counts["other"] += 1
    caught = counts["killed"] + counts["timeout"]
    counts["score"] = 100.0 * caught / counts["mutants"] if counts["mutants"] else 100.0
    return counts


def survivors(exit_codes: dict[str, int]) -> list[str]:
    return sorted(name for name, code in exit_codes.items() if code not in KILLED and code not in TIMEOUT)


def diff_of(mutant: str, module: str) -> str:
    """The mutant as a unified diff of its function (what `mutmut show` prints), without a process per mutant."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(mutant, path=Path(module))


def print_table(rows: dict[str, dict], threshold: float) -> None:
    header = f"{'module':<26}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'no test':>8}{'score':>8}"
    print(header)
    print("-" * len(header))
    for module, c in rows.items():
        flag = "" if c["score"] >= threshold else "  < threshold"
        print(f"{module:<26}{c['mutants']:>8}{c['killed']:>8}{c['timeout']:>8}{c['survived'] + c['other']:>9}"
              f"{c['no_tests']:>8}{c['score']:>7.1f}%{flag}")
    total = {k: sum(c[k] for c in rows.values()) for k in ("mutants", "killed", "timeout", "survived",
                                                             "no_tests", "other")}
    score = 100.0 * (total["killed"] + total["timeout"]) / total["mutants"] if total["mutants"] else 100.0
    print("-" * len(header))
    print(f"{'all':<26}{total['mutants']:>8}{total['killed']:>8}{total['timeout']:>8}"
          f"{total['survived'] + total['other']:>9}{total['no_tests']:>8}{score:>7.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=85.0, help="lowest acceptable score per module, in %%")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutant runs")
    parser.add_argument("--reuse", action="store_true",
                        help="keep mutants/ from the last run (mutmut re-runs only what changed) instead of starting "
                             "afresh")
    parser.add_argument("--report-only", action="store_true", help="score the last run without running mutmut")
    parser.add_argument("--diff", action="store_true", help="print each survivor's diff, not only its name")
    parser.add_argument("--json", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # mutmut reads setup.cfg and mutants/ relative to the working directory
    started = time.monotonic()
    if not args.report_only:
        if not args.reuse and MUTANTS.exists():
            shutil.rmtree(MUTANTS)
        log_path = ROOT / "build" / "mutation.log"
        code = run_mutmut(args.max_children, log_path)
        if code != 0:
            print(f"mutmut run failed (exit {code}); see {log_path.relative_to(ROOT)}", file=sys.stderr)
            return code
    results = module_results()
    if not results:
        print("no mutation results found under mutants/", file=sys.stderr)
        return 2

    rows = {module: tally(codes) for module, codes in results.items()}
    for module, codes in results.items():
        names = survivors(codes)
        if names:
            print(f"\n{module}: {len(names)} surviving (see one with `.venv/bin/mutmut show NAME`)")
            for name in names:
                print(f"  {name}  [{'no test reaches it' if codes[name] in NO_TESTS else 'survived'}]")
                if args.diff:
                    print(indent(diff_of(name, module), "      "))
    print()
    print_table(rows, args.threshold)
    print(f"\n{time.monotonic() - started:.0f} s; threshold {args.threshold:g}% per module")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    below = [module for module, c in rows.items() if c["score"] < args.threshold]
    if below:
        print("under the threshold: " + ", ".join(below), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
