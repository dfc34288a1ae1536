"""Behaviour is unchanged by refactors: short digits runs of every pruner reproduce their golden records exactly.

The fixture was recorded by ``python -m tests.golden.record`` before the package was re-layered; a change that
is meant to alter results re-records it and says why in its commit.
"""

from __future__ import annotations

import json

import pytest

from tests.golden.record import CASES, FIXTURE, machine_fixture, run_case

# This kind of machine's records where they were taken on it, else the fixture of the refactor's machine
GOLDEN = json.loads((machine_fixture() if machine_fixture().is_file() else FIXTURE).read_text())


def test_fixture_covers_every_case():
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_reproduces_golden_records(name, tmp_path):
    got = json.loads(json.dumps(run_case(CASES[name], tmp_path)))  # the fixture's JSON round trip
    want = GOLDEN[name]
    assert len(got["epochs"]) == len(want["epochs"])
    for epoch, (g, w) in enumerate(zip(got["epochs"], want["epochs"])):
        assert g == w, f"epoch {epoch}: " + ", ".join(
            f"{k}: {g.get(k)!r} != {w.get(k)!r}" for k in sorted(set(g) | set(w)) if g.get(k) != w.get(k)
        )
    assert got["summary"] == want["summary"]
