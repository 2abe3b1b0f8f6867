"""The soak's checks on what the load saw and when calls failed (tools/soak/soak.py)."""

# A killed backend fails the calls that were on its sockets (ABORTED, reason outcome_unknown,
# when the request may have reached it) and the leases that could not get a socket while it was
# down (UNAVAILABLE, reason connect_refused). Any other code is a bug.
ALLOWED_ERROR_CODES = {"UNAVAILABLE", "ABORTED"}


def check_load(results, failures):
    """No wrong answer; failures only with the codes a restart explains; real progress."""
    lines = []
    for mode in ("call", "lease"):
        r = results.get(mode)
        if r is None:
            continue
        codes = r.get("errors_by_code", {})
        lines.append(f"load {mode:5}  {r['operations']} operations, {r['ok']} ok, "
                     f"{r['exchanges']} exchanges verified, {r['corrupt']} corrupt, "
                     f"{r['errors']} failed " + (str(codes) if codes else ""))
        if r["corrupt"]:
            failures.append(f"load ({mode}): {r['corrupt']} wrong answers (corrupt responses)")
        bad = {c: n for c, n in codes.items() if c not in ALLOWED_ERROR_CODES}
        if bad:
            failures.append(f"load ({mode}): failures with codes a backend restart does not "
                            f"explain: {bad}; first messages: {r.get('first_error_message', '')}")
        if r["ok"] == 0:
            failures.append(f"load ({mode}): no operation succeeded")
    return lines


def check_failures_during_outages(rows, outages, settle, failures):
    """Calls and leases may fail only while the backend is away (and `settle` s after).

    A failure counted in a sample taken outside every outage window means the broker failed
    callers while its backend was up: a broken socket handed out, a reload that dropped the
    pool, a stuck waiter timing out.
    """
    for name in ("calls_failed", "leases_refused"):
        for prev, row in zip(rows, rows[1:]):
            grew = row[name] - prev[name]
            if grew <= 0:
                continue
            # The failures happened between the two samples; one outage window must overlap.
            if not any(prev["time"] <= up + settle and row["time"] >= down
                       for down, up in outages):
                failures.append(f"{name} rose by {grew} between {prev['time']:.1f} s and "
                                f"{row['time']:.1f} s with the backend up (outages: " +
                                ", ".join(f"{d:.1f}-{u:.1f} s" for d, u in outages) + ")")
