"""The broker's /metrics page (Prometheus text format), read just enough for the soak."""

import re

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """Prometheus text format -> list of (name, {label: value}, float)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


def total(samples, backend, name, **match):
    """Sum of `name` over the samples of `backend` (or without a backend label) whose labels
    match; a wanted value "!X" means any value but X."""
    result = 0.0
    for n, labels, value in samples:
        if n != name or labels.get("backend", backend) != backend:
            continue
        ok = True
        for k, want in match.items():
            got = labels.get(k)
            if want.startswith("!"):
                ok = got != want[1:]
            else:
                ok = got == want
            if not ok:
                break
        if ok:
            result += value
    return result
