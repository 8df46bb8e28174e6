#!/usr/bin/env python3
"""Splits a perf profile of the gateway (perf script output, recorded with --call-graph dwarf) by
request stage: each sample counts for the first stage, in the order below, found on its stack.

    perf script -i perf.data -F comm,tid,ip,sym > stacks.txt
    scripts/profile_stages.py stacks.txt

Used by scripts/profile-get.sh; the stage names are keyhole's own functions (pipeline.rs)."""
import collections
import re
import sys

# (stage, a function name on the stack); the first match wins.
STAGES = [
    ("audit writer thread", "audit::sink::Writer"),
    ("audit writer thread", "keyhole-audit"),
    ("authenticate (SigV4)", "pipeline::authenticate"),
    ("describe (route the call, request context)", "pipeline::describe"),
    ("authorize", "authz::authorize"),
    ("storage: find and read the object", "LocalBackend::get"),
    ("GetObject handler (headers)", "s3::object::get_object"),
    ("execute (other)", "pipeline::execute"),
    ("complete (audit event)", "pipeline::complete"),
    ("response body and its audit record", "AuditedBody"),
    ("finish", "pipeline::finish"),
    ("route", "pipeline::route"),
    ("locate", "pipeline::locate"),
    ("handle (other)", "pipeline::handle"),
    ("socket write (kernel TCP, incl. loopback delivery)", "poll_flush"),
    ("socket read", "poll_read"),
    ("hyper (other)", "hyper::"),
    ("tokio runtime (scheduler, blocking pool)", "tokio::runtime"),
]


def stacks(path):
    cur = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    yield cur
                cur = []
            elif not line.startswith(("\t", " ")):
                cur = [line]  # the sample's header (comm, tid): thread names count too
            else:
                parts = line.strip().split(None, 1)
                cur.append(parts[1] if len(parts) > 1 else "?")
    if cur:
        yield cur


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    counts = collections.Counter()
    total = 0
    for st in stacks(sys.argv[1]):
        total += 1
        joined = " | ".join(st)
        for name, pattern in STAGES:
            if pattern in joined:
                counts[name] += 1
                break
        else:
            leaf = st[1] if len(st) > 1 else "?"
            counts["other: " + re.sub(r"\s*\(.*$", "", leaf)[:50]] += 1
    print(f"{total} samples")
    for name, n in counts.most_common(20):
        print(f"{100 * n / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
