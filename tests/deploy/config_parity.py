#!/usr/bin/env python3
"""Compares the broker config a chart rendering holds with a reference config file.

    config_parity.py RENDERED_MANIFESTS REFERENCE_CONFIG

RENDERED_MANIFESTS is `helm template` output; its ConfigMap's config.yaml is parsed and compared
with REFERENCE_CONFIG (deploy/examples/full.yaml) field by field, recursively. Every difference is
printed with its path (backends[mq-legacy].tls.encryption); exit 1 if there is any.

File paths cannot be equal (the reference names test files, the chart names the files it mounts
under /etc/tlsbroker), so for the fields that hold paths the rule is: set in both (a list of the
same length), and each rendered path is a file the StatefulSet's projected volume provides.
"""
import sys

import yaml

MOUNT = "/etc/tlsbroker/"
# Fields holding file paths, as paths with list indexes and backend names dropped.
PATH_FIELDS = {
    "listen.tls.cert", "listen.tls.key", "listen.tls.client_ca",
    "backends.tls.ca", "backends.tls.cert", "backends.tls.key", "backends.tls.crl",
    "backends.tls.pkcs12", "backends.tls.password_file", "backends.tls.key_password_file",
}


def mounted_paths(docs):
    sts = next(d for d in docs if d.get("kind") == "StatefulSet")
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    config = next(v for v in volumes if v["name"] == "config")
    paths = set()
    for source in config["projected"]["sources"]:
        for kind in ("secret", "configMap"):
            for item in source.get(kind, {}).get("items", []):
                paths.add(MOUNT + item["path"])
    return paths


def compare(ref, got, path, field, mounted, out):
    if field in PATH_FIELDS:
        refs = ref if isinstance(ref, list) else [ref]
        gots = got if isinstance(got, list) else [got]
        if len(refs) != len(gots):
            out.append(f"{path}: {len(refs)} file(s) in the reference, {len(gots)} rendered")
        for g in gots:
            if g not in mounted:
                out.append(f"{path}: rendered path {g!r} is not a file the chart mounts")
        return
    if isinstance(ref, dict) and isinstance(got, dict):
        for key in sorted(set(ref) | set(got)):
            sub, subfield = f"{path}.{key}" if path else key, f"{field}.{key}" if field else key
            if key not in got:
                out.append(f"{sub}: in the reference, not rendered by the chart")
            elif key not in ref:
                out.append(f"{sub}: rendered by the chart, not in the reference")
            else:
                compare(ref[key], got[key], sub, subfield, mounted, out)
        return
    if field == "backends" and isinstance(ref, list) and isinstance(got, list):
        ref_names = [b.get("name") for b in ref]
        got_names = [b.get("name") for b in got]
        if ref_names != got_names:
            out.append(f"backends: names {ref_names} in the reference, {got_names} rendered")
        by_name = {b.get("name"): b for b in got}
        for b in ref:
            if b.get("name") in by_name:
                compare(b, by_name[b["name"]], f"backends[{b['name']}]", "backends", mounted, out)
        return
    if isinstance(ref, list) and isinstance(got, list) and len(ref) == len(got):
        for i, (r, g) in enumerate(zip(ref, got)):
            compare(r, g, f"{path}[{i}]", field, mounted, out)
        return
    # Scalars: equal values of the same YAML type (an int is not its string).
    if type(ref) is not type(got) or ref != got:
        out.append(f"{path}: {ref!r} in the reference, {got!r} rendered")


def main():
    rendered_file, reference_file = sys.argv[1:3]
    docs = [d for d in yaml.safe_load_all(open(rendered_file)) if d]
    cm = next(d for d in docs if d.get("kind") == "ConfigMap")
    rendered = yaml.safe_load(cm["data"]["config.yaml"])
    reference = yaml.safe_load(open(reference_file))
    out = []
    compare(reference, rendered, "", "", mounted_paths(docs), out)
    for line in out:
        print("DIFF", line)
    if out:
        print(f"FAIL: {len(out)} difference(s) between the chart's config and {reference_file}")
        return 1
    print(f"OK: the chart's config equals {reference_file} field by field")
    return 0


if __name__ == "__main__":
    sys.exit(main())
