"""Bouts at the tolerance edges (GGIR bout.metric 4/5 rule: N-minute windows with >= 80 %,
first and last epoch above, no interruption > 1 min)."""

import numpy as np

from harnet.measures.bouts import bout_mask, bout_runs


def _x(s: str) -> np.ndarray:
    return np.array([c == "1" for c in s.replace(" ", "")])


def _bouts(s, window_sec, minutes, **kw):
    st, en = bout_runs(bout_mask(_x(s), window_sec, minutes, **kw))
    return list(zip(st.tolist(), en.tolist()))


def test_exactly_80_percent_is_a_bout_79_is_not():
    # 60-s epochs, 10-min bout: 8 of 10 above with 1-min interruptions: a bout
    assert _bouts("0 1101110111 0", 60, 10) == [(1, 11)]
    # 7 of 10: not (a window of 10 from the first 1 has 7)
    assert _bouts("0 1101101101 0", 60, 10) == []


def test_bout_must_start_and_end_above():
    # the only 10-epoch windows with >= 8 above start or end below -> no bout
    assert _bouts("0111111110", 60, 10) == []
    assert _bouts("1111111111", 60, 10) == [(0, 10)]


def test_interruption_longer_than_one_minute_breaks():
    # 30-s epochs, 5-min bout (10 epochs): a 1-min interruption (2 epochs) is tolerated ...
    assert _bouts("111111 00 111111111111", 30, 5) == [(0, 20)]
    # ... a 1.5-min one (3 epochs) is not: only the windows after it qualify
    assert _bouts("111111 000 11111111111", 30, 5) == [(9, 20)]
    # the last epoch after a gap is only in a bout if a qualifying window reaches it
    assert _bouts("1111001111 11", 30, 5) == [(0, 12)]
    assert _bouts("1111001111 1 0 1", 30, 5) == [(0, 11)]


def test_one_minute_bouts_and_union_of_windows():
    assert _bouts("0110", 30, 1) == [(1, 3)]
    assert _bouts("010", 30, 1) == []
    # overlapping qualifying windows join into one bout
    assert _bouts("1111111111 0 1111111111", 60, 10) == [(0, 21)]


def test_sedentary_criterion_90_percent():
    s = "1111111111" * 3  # 30 one-minute epochs
    x = s[:10] + "0" + s[11:]  # 29/30 = 96.7 %
    assert _bouts(x, 60, 30, criterion=0.9) == [(0, 30)]
    x = "1" * 5 + "0" + "1" * 5 + "0" + "1" * 5 + "0" + "1" * 5 + "0" + "1" * 8  # 26/30 = 86.7 %
    assert _bouts(x, 60, 30, criterion=0.9) == []
