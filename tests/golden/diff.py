"""Every epoch-record or summary key that differs from the golden fixture, per case.

``python tests/golden/diff.py [case ...]`` (all cases by default).
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, "/work/main")
from tests.golden.record import CASES, FIXTURE, run_case

gold = json.loads(FIXTURE.read_text())
names = sys.argv[1:] or sorted(CASES)
for name in names:
    with tempfile.TemporaryDirectory() as t:
        got = json.loads(json.dumps(run_case(CASES[name], Path(t))))
    w = gold[name]
    diffs = []
    if len(got["epochs"]) != len(w["epochs"]):
        diffs.append(f"epochs {len(got['epochs'])} vs {len(w['epochs'])}")
    for e, (g, ww) in enumerate(zip(got["epochs"], w["epochs"])):
        for k in sorted(set(g) | set(ww)):
            if g.get(k, "<missing>") != ww.get(k, "<missing>"):
                diffs.append(f"ep{e} {k}: {g.get(k, '<missing>')!r} vs {ww.get(k, '<missing>')!r}")
    gs, ws = got["summary"], w["summary"]
    for k in sorted(set(gs) | set(ws)):
        if gs.get(k, "<missing>") != ws.get(k, "<missing>"):
            diffs.append(f"summary {k}: {gs.get(k, '<missing>')!r} vs {ws.get(k, '<missing>')!r}")
    print(name, "OK" if not diffs else "DIFF", *diffs[:8], sep="\n  ")
