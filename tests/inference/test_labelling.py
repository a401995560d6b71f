"""Known-answer tests of the state labelling rules (hand-built grid, every rule hit once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.labelling import label_states, state_fractions
from wattscape.models import dims as D

T0 = pd.Timestamp("2024-04-03 14:00:00")
X, I, A, P, DEC = (D.state_code(s) for s in (D.EXCLUDED, D.IDLE, D.ACTIVE, D.PREFILL, D.DECODE))


def _at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


@pytest.fixture
def grid():
    time = np.array([_at(s) for s in range(30)], dtype="datetime64[ns]")
    power = np.full(30, 50.0)
    power[6:12] = 200.0  # inferences 0 and 1
    power[15:20] = 200.0  # inference 2 and two busy samples after it (unlogged work)
    requests = pd.DataFrame(
        {
            "start": [_at(5.5), _at(8.7), _at(15.0)],
            "end": [_at(8.5), _at(12.0), _at(18.0)],
            "first_token": [_at(6.0), _at(9.5), _at(16.5)],
        }
    )
    return time, power, requests


def test_idle_active_known_answer(grid):
    time, power, requests = grid
    state, segment, labels, quirks = label_states(
        time, power, requests.drop(columns="first_token"), startup_end=_at(4.0)
    )
    expected_state = [X] * 4 + [I, I] + [X, X, X] + [A, A, A] + [I, I, I] + [A, A, A] + [X, X] + [I] * 10
    expected_segment = [-1] * 6 + [0, 0, 0] + [1, 1, 1] + [-1] * 3 + [2, 2, 2] + [-1] * 12
    assert labels == D.LABELS_ACTIVE
    assert state.tolist() == expected_state
    assert segment.tolist() == expected_segment
    assert any("after the last logged inference" in q for q in quirks)
    frac = state_fractions(state)
    assert frac[D.ACTIVE] == pytest.approx(6 / 30)
    assert frac[D.EXCLUDED] == pytest.approx(9 / 30)


def test_prefill_decode_known_answer(grid):
    time, power, requests = grid
    state, segment, labels, _ = label_states(time, power, requests, startup_end=_at(4.0), exclude_first=False)
    assert labels == D.LABELS_PHASES
    # inference 0 kept (first token at 6.0): samples 6, 7, 8 decode
    assert state[6:9].tolist() == [DEC, DEC, DEC]
    assert state[9:12].tolist() == [P, DEC, DEC]  # first token of inference 1 at 9.5
    assert state[15:18].tolist() == [P, P, DEC]  # first token of inference 2 at 16.5
    assert segment[6:12].tolist() == [0, 0, 0, 1, 1, 1]


def test_prefill_samples(grid):
    time, power, requests = grid
    requests = requests.assign(first_token=[_at(7.5), _at(10.5), _at(16.5)])
    state, _, _, _ = label_states(time, power, requests, startup_end=_at(4.0), exclude_first=False)
    assert state[6:12].tolist() == [P, P, DEC, P, P, DEC]
    assert state[15:18].tolist() == [P, P, DEC]


def test_no_startup_end_excludes_before_first_inference(grid):
    time, power, requests = grid
    state, _, _, _ = label_states(time, power, requests.drop(columns="first_token"), exclude_first=False)
    assert (state[:6] == X).all()
    assert (state[6:12] == A).all()


def test_long_gap_is_idle_short_gap_is_not(grid):
    time, power, requests = grid
    state2, segment2, _, _ = label_states(
        time, power, requests.drop(columns="first_token"), startup_end=_at(4.0), min_idle_s=5.0
    )
    assert (segment2[12:15] == 1).all() and (state2[12:15] == A).all()  # the 3 s gap absorbed
