#!/usr/bin/env python3
"""Every alert names a runbook section that exists.

    check_runbooks.py RULES DOC

Each alert in RULES must carry annotations.runbook_url ending in `DOC_NAME#anchor`, and DOC
must have a heading whose anchor (GitHub's rule: lower case, punctuation other than '-' and
'_' dropped, spaces to '-') is that anchor. Prints every problem; exit 1 if any.
"""
import os
import re
import sys

import yaml


def anchors(doc_text):
    found = set()
    in_code = False
    for line in doc_text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            found.add(text.replace(" ", "-"))
    return found


def main():
    rules_file, doc_file = sys.argv[1:3]
    doc_name = os.path.basename(doc_file)
    known = anchors(open(doc_file).read())
    problems, alerts = [], 0
    for group in yaml.safe_load(open(rules_file))["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            alerts += 1
            url = rule.get("annotations", {}).get("runbook_url", "")
            m = re.search(r"/" + re.escape(doc_name) + r"#([^#/]+)$", url)
            if not m:
                problems.append(f"{rule['alert']}: runbook_url {url!r} does not point into {doc_name}#...")
            elif m.group(1) not in known:
                problems.append(f"{rule['alert']}: {doc_file} has no section #{m.group(1)}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"OK: all {alerts} alerts point at a section of {doc_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
