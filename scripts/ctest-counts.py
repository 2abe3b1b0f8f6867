#!/usr/bin/env python3
"""Counts what a ctest run really did, from its JUnit file (scripts/test.sh writes one).

    ctest-counts.py stage NAME BUILD_DIR     one stage:  "NAME: N passed, N failed, N skipped"
    ctest-counts.py distinct BUILD_DIR...    several stages: distinct tests, then
                                             "CI: N passed, N failed, N skipped" over them

ctest's own summary counts fixture set-up and clean-up steps (make_test_pki, ...) as tests
and a skip (SKIP_RETURN_CODE, GTEST_SKIP) as a pass; this counts neither. A set-up or clean-up
step that failed is still counted as a failure, so a broken fixture cannot hide. A test that
ctest did not run because its fixture failed counts as failed, as ctest itself counts it. Over
several stages a test counts once: failed if it failed in any stage, skipped if it was skipped
in every stage it ran in, passed otherwise.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

JUNIT = "ctest-junit.xml"
# ctest's <skipped message=...> for a real skip; any other "notrun" is a test that could not
# start (missing executable, failed fixture), which ctest reports as failed.
SKIP_MESSAGES = ("SKIP_RETURN_CODE", "SKIP_REGULAR_EXPRESSION_MATCHED")


def fixture_steps(build_dir):
    """Names of the tests that are fixture set-up or clean-up steps, not tests."""
    out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                         check=True, capture_output=True, text=True).stdout
    steps = set()
    for test in json.loads(out).get("tests", []):
        props = {p["name"] for p in test.get("properties", [])}
        if props & {"FIXTURES_SETUP", "FIXTURES_CLEANUP"}:
            steps.add(test["name"])
    return steps


def skip_reason(case):
    """The test's own words for why it skipped (GTEST_SKIP's message, a script's "SKIPPED:"
    line), else ctest's reason."""
    lines = (case.findtext("system-out") or "").splitlines()
    for i, text in enumerate(lines):
        if text.endswith(": Skipped") and i + 1 < len(lines):
            return lines[i + 1].strip()[:160]
        if text.startswith("SKIPPED:"):
            return text[:160]
    return case.find("skipped").get("message", "")


def results(build_dir):
    """{test: 'passed' | 'failed' | 'skipped'} of the last run in BUILD_DIR, and its steps."""
    path = os.path.join(build_dir, JUNIT)
    if not os.path.exists(path):
        sys.exit(f"ctest-counts: {path} is missing (did ctest run with --output-junit?)")
    steps = fixture_steps(build_dir)
    res, reasons = {}, {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name, status = case.get("name"), case.get("status")
        skipped = case.find("skipped")
        if status == "run":
            res[name] = "passed"
        elif status == "disabled":  # DISABLED property or a gtest DISABLED_ test
            res[name] = "skipped"
            reasons[name] = "disabled"
        elif status == "notrun" and skipped is not None and \
                skipped.get("message", "").startswith(SKIP_MESSAGES):
            res[name] = "skipped"
            reasons[name] = skip_reason(case)
        else:
            res[name] = "failed"
    failed_steps = [s for s in steps if res.get(s) == "failed"]
    for s in steps:
        res.pop(s, None)
    return res, reasons, failed_steps


def line(label, counts):
    return (f"{label}: {counts.count('passed')} passed, {counts.count('failed')} failed, "
            f"{counts.count('skipped')} skipped")


def stage(label, build_dir):
    res, reasons, failed_steps = results(build_dir)
    for name, why in sorted(reasons.items()):
        print(f"skipped: {name}: {why}")
    for name in failed_steps:
        print(f"failed set-up step: {name}")
    print(line(label, list(res.values()) + ["failed"] * len(failed_steps)))


def distinct(build_dirs):
    merged, failed_steps = {}, []
    for build_dir in build_dirs:
        res, _, steps = results(build_dir)
        failed_steps += steps
        for name, outcome in res.items():
            before = merged.get(name)
            if before == "failed" or outcome == "failed":
                merged[name] = "failed"
            elif before == "passed" or outcome == "passed":
                merged[name] = "passed"
            else:
                merged[name] = "skipped"
    print(f"distinct tests: {len(merged)} (over {len(build_dirs)} ctest stages)")
    print(line("CI", list(merged.values()) + ["failed"] * len(failed_steps)))


def main(argv):
    if len(argv) == 4 and argv[1] == "stage":
        stage(argv[2], argv[3])
    elif len(argv) >= 3 and argv[1] == "distinct":
        distinct(argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
