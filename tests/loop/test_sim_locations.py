"""`make simulate` with several CSVs (tools/sim_locations.py): which rows each location plays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.sim_locations import SMALL_ROWS, sources


def _csv(path: Path, n: int, target: str) -> Path:
    path.write_text("a,b," + target + "\n" + "".join(
        f"{i},{i % 7},{'yes' if i % 5 == 0 else 'no'}\n" for i in range(n)))
    return path


def test_each_file_is_a_location_and_two_small_ones_take_rows_it_never_sees(
        tmp_path: Path) -> None:
    a, b = _csv(tmp_path / "a.csv", 1000, "out"), _csv(tmp_path / "b.csv", 700, "target")
    played = sources(f"{a},{b}", "out,target", "yes,yes|Yes", "b;", seed=3, max_rows=500)
    assert [s.name for s in played] == ["a", "b", "a-small", "b-small"]
    assert [s.pooling for s in played] == [True, False, True, False]
    assert played[1].positive == ("yes", "Yes") and played[0].exclude == ("b",)
    assert len(played[0].rows) == 500 and len(played[1].rows) == 400  # 700 - the small ones
    for big, small in ((played[0], played[2]), (played[1], played[3])):
        assert len(small.rows) == SMALL_ROWS and not set(big.rows) & set(small.rows)
    # seeded: the same order every run, not the file's
    again = sources(f"{a},{b}", "out,target", "yes,yes", "", seed=3, max_rows=500)
    assert again[0].rows == played[0].rows and played[0].rows != sorted(played[0].rows)
    capped = sources(f"{a},{b}", "out,target", "yes,yes", "", seed=3, max_rows="200,9999")
    assert [len(s.rows) for s in capped[:2]] == [200, 400]


def test_the_lists_must_name_one_entry_per_file(tmp_path: Path) -> None:
    a, b = _csv(tmp_path / "a.csv", 400, "out"), _csv(tmp_path / "b.csv", 400, "out")
    with pytest.raises(ValueError, match="one entry per file"):
        sources(f"{a},{b}", "out", "yes,yes", "", seed=1, max_rows=100)
    with pytest.raises(ValueError, match="one entry per file"):
        sources(f"{a}", "out", "yes", "", seed=1, max_rows=100)
