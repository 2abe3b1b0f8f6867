#!/usr/bin/python3
"""Checks that every PromQL query of the Grafana dashboard and of the alert rules names metrics
(and label matchers) that a real broker exports, and that the dashboard's panels use its
filters.

  check_queries.py --broker TLSBROKER --pki PKI_DIR FILE...   starts the broker itself
  check_queries.py --metrics-file METRICS.txt FILE...          against a saved /metrics page

FILE is a dashboard (.json: every panel target's `expr` and every templating `query`) or a
rules file (.yaml: every rule's `expr`). In a dashboard every metric selector of a panel must
filter by the namespace and pod variables (`namespace=~"$namespace"`, `pod=~"$pod"`), so that
picking a pod narrows every panel, and every query variable must be used by some panel. The
broker is started on loopback ports chosen by the
kernel with a generated config (one backend that is never dialled: the broker creates its
labelled series up front), its /metrics page is fetched once, and the broker is stopped.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

# Labels Prometheus adds from the scrape target; queries may group or filter by them.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "le"}
# The broker's own metrics and the standard process_* ones it exports.
METRIC = re.compile(r"\b((?:tlsbroker|process)_[a-zA-Z0-9_]+)\b(\{([^}]*)\})?")
# Filters every dashboard panel must apply to every metric it selects.
PANEL_FILTERS = {"namespace": "$namespace", "pod": "$pod"}
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Returns {sample name: {label: set(values)}} from a Prometheus text page."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        labels = series.setdefault(m.group(1), {})
        for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return series


def queries(path):
    if path.endswith(".json"):
        dash = json.load(open(path))
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                yield f"panel {panel.get('title')!r}", target.get("expr", "")
        for var in dash.get("templating", {}).get("list", []):
            if isinstance(var.get("query"), str) and "(" in var["query"]:
                yield f"variable {var['name']!r}", var["query"]
    else:
        for group in yaml.safe_load(open(path)).get("groups", []):
            for rule in group.get("rules", []):
                yield f"rule {rule.get('alert') or rule.get('record')!r}", rule["expr"]


def dashboard_filter_problems(path):
    """Panels that do not filter by the pod and namespace variables; variables no panel uses."""
    problems = []
    dash = json.load(open(path))
    exprs = [(p.get("title"), t.get("expr", "")) for p in dash.get("panels", [])
             for t in p.get("targets", [])]
    for title, expr in exprs:
        for name, _, matchers in METRIC.findall(expr):
            given = {label: value for label, op, value in MATCHER.findall(matchers) if op == "=~"}
            for label, var in PANEL_FILTERS.items():
                if given.get(label) != var:
                    problems.append(f"{path}: panel {title!r}: {name} is not filtered by "
                                    f'{label}=~"{var}"')
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query" and not any(f"${var['name']}" in e for _, e in exprs):
            problems.append(f"{path}: variable {var['name']!r} is used by no panel")
    return problems


def check(paths, series):
    problems = []
    checked = 0
    for path in paths:
        if path.endswith(".json"):
            problems += dashboard_filter_problems(path)
        for where, expr in queries(path):
            names = METRIC.findall(expr)
            if not names and "tlsbroker" not in expr and "process_" not in expr:
                problems.append(f"{path}: {where}: names no tlsbroker metric: {expr}")
            for name, _, matchers in names:
                checked += 1
                if name not in series:
                    problems.append(f"{path}: {where}: {name} is not exported by the broker")
                    continue
                for label, op, value in MATCHER.findall(matchers):
                    if label in TARGET_LABELS:
                        continue
                    if label not in series[name]:
                        problems.append(f"{path}: {where}: {name} has no label {label!r}")
                    elif op == "=" and value not in series[name][label]:
                        problems.append(f"{path}: {where}: {name}{{{label}}} never has the value "
                                        f"{value!r} (has {sorted(series[name][label])})")
            # Grouping labels must exist on some metric of the query (or come from the target).
            known = set(TARGET_LABELS)
            for name, _, _ in names:
                known |= set(series.get(name, {}))
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                for label in filter(None, (x.strip() for x in group.split(","))):
                    if label not in known:
                        problems.append(f"{path}: {where}: groups by {label!r}, which no metric "
                                        "of the query has")
    return checked, problems


def scrape_live_broker(broker, pki):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.yaml")
        with open(config, "w") as f:
            f.write(f"""listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
  plaintext: true
backends:
  - name: ims
    address: 127.0.0.1:9
    tls: {{ca: {pki}/ec/ca-chain.pem}}
    allowed_callers: ["*"]
""")
        proc = subprocess.Popen([broker, "--config", config], stderr=subprocess.PIPE, text=True)
        try:
            port = None
            deadline = time.monotonic() + 20
            while port is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                m = re.search(r"tlsbroker serving.*\(port (\d+)\)", line)
                if m:
                    port = int(m.group(1))
            if port is None:
                sys.exit(f"the broker did not report its metrics port (exit {proc.poll()})")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                return r.read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker")
    ap.add_argument("--pki")
    ap.add_argument("--metrics-file")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.metrics_file:
        text = open(args.metrics_file).read()
    else:
        text = scrape_live_broker(args.broker, args.pki)
    series = parse_metrics(text)
    if not any(n.startswith("tlsbroker_") for n in series):
        sys.exit("the /metrics page has no tlsbroker metric")
    checked, problems = check(args.files, series)
    for p in problems:
        print("FAIL:", p)
    if problems:
        return 1
    print(f"OK: {checked} metric references in {len(args.files)} file(s) name exported series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
