"""Drift over a long dub (modules/evaluation/drift.py) on synthetic per-frame values: the slope per minute of a
linear decay and of a constant, LSE-C per window as syncnet_python's confidence on that stretch, memory that grows
with the windows and not the frames; the worst and best frames kept while streaming; Compare Dubs' sort order."""

import numpy as np
import pytest
import torch

from modules.errors import SettingError
from modules.evaluation.drift import DubDrift, WindowSums
from modules.evaluation.dub_scores import DubScorer
from modules.evaluation.lip_sync_error import scores_from_distances
from modules.evaluation.moments import WorstAndBest
from modules.evaluation.plots import (HIGHER_IS_BETTER, LOWER_IS_BETTER, NEAREST_ZERO_IS_BETTER, SORT_AS_GIVEN,
                                      SORT_CHOICES, sort_versions)

COMPUTED = {"identity_cosine": {"computed": True}, "ssim": {"computed": True}}


def feed(drift: DubDrift, values: dict, chunk: int = 16) -> None:
    """As DubScorer feeds it: chunk by chunk, each with its first frame."""
    count = len(next(iter(values.values())))
    for start in range(0, count, chunk):
        drift.add(start, {name: series[start:start + chunk] for name, series in values.items()})


def test_a_linear_decay_gives_its_slope_per_minute_and_a_constant_about_zero():
    fps, frames = 25.0, 3 * 60 * 25 + 40  # three minutes and a partial last window
    minutes = np.arange(frames) / fps / 60
    identity = 0.9 - 0.012 * minutes
    identity[::7] = np.nan  # frames without a face are left out, not counted as 0
    ssim = 0.8 + np.random.default_rng(0).normal(0, 0.01, frames)
    drift = DubDrift(fps, window_seconds=5.0)
    feed(drift, {"identity_cosine": identity, "ssim": ssim})
    report = drift.report({**COMPUTED, "lse_c": {"computed": False, "why": "no SyncNet given"}})
    assert report["window_seconds"] == 5.0
    decay, level = report["metrics"]["identity_cosine"], report["metrics"]["ssim"]
    assert decay["slope_per_minute"] == pytest.approx(-0.012, abs=1e-6)
    assert decay["says"] == "identity loses 0.012 per minute"
    assert abs(level["slope_per_minute"]) < 2e-3 and "SSIM" in level["says"]
    windows = decay["windows"]
    assert len(windows) == 37 and [w["start_s"] for w in windows[:3]] == [0.0, 5.0, 10.0]
    assert windows[-1]["start_s"] == 180.0 and level["windows"][-1]["frames"] == 40
    assert report["metrics"]["lse_c"] == {"computed": False, "why": "no SyncNet given"}
    short = DubDrift(fps, window_seconds=60.0)
    feed(short, {"identity_cosine": identity[:1000], "ssim": ssim[:1000]})  # 40 s: one window
    one = short.report(COMPUTED)["metrics"]["identity_cosine"]
    assert not one["computed"] and "needs 2 windows" in one["why"] and len(one["windows"]) == 1
    with pytest.raises(SettingError, match="positive"):
        DubDrift(fps, window_seconds=0)


def test_the_accumulator_holds_numbers_per_window_not_per_frame():
    fps, frames = 25.0, 100_000  # 66 minutes
    drift = DubDrift(fps, window_seconds=5.0)
    values = np.linspace(1, 0.5, frames)
    feed(drift, {"identity_cosine": values, "ssim": values}, chunk=500)
    windows = frames // 125
    for sums in drift.windows.values():
        assert sums.sums.shape == (windows, 1)
        assert sums.counts.shape == sums.time_sums.shape == (windows,)
        held = [v for v in vars(sums).values() if isinstance(v, (np.ndarray, list))]
        assert sum(np.size(v) for v in held) == 3 * windows  # nothing else grows
    assert set(vars(drift)) == {"fps", "window_seconds", "windows"}
    slope = drift.report(COMPUTED)["metrics"]["ssim"]["slope_per_minute"]
    assert slope == pytest.approx(-0.5 / (frames / fps / 60), rel=1e-3)


def test_lse_c_per_window_is_syncnet_pythons_confidence_on_that_stretch():
    distances = torch.from_numpy(np.random.default_rng(1).uniform(5, 12, (60, 31)).astype(np.float32))
    drift = DubDrift(30.0, window_seconds=1.0)  # SyncNet's distances are at 25 fps whatever the dub's rate
    entry = drift.report({"lse_c": {"computed": True}}, distances.numpy())["metrics"]["lse_c"]
    assert [w["frames"] for w in entry["windows"]] == [25, 25, 10]
    for window, (start, stop) in zip(entry["windows"], ((0, 25), (25, 50), (50, 60))):
        expected = scores_from_distances(distances[start:stop], 15)[2]
        assert window["value"] == pytest.approx(expected, rel=1e-5)
    whole = WindowSums(10.0, 31)
    whole.add(np.arange(60) / 25, distances.numpy())
    assert whole.counts.tolist() == [60]


def test_only_the_worst_and_best_frames_are_kept_while_streaming():
    moments = WorstAndBest()
    values = np.sin(np.arange(200) / 9.0)
    values[50] = np.nan
    frames = np.arange(200, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    for start in range(0, 200, 16):
        moments.add(start, {"identity_cosine": values[start:start + 16]}, frames[start:start + 16], None)
    kept = {(metric, end): item for metric, end, item in moments.moments()}
    assert set(kept) == {("identity_cosine", "lowest"), ("identity_cosine", "highest")}  # no SSIM given
    low, high = kept[("identity_cosine", "lowest")], kept[("identity_cosine", "highest")]
    assert low["frame"] == int(np.nanargmin(values)) and high["frame"] == int(np.nanargmax(values))
    assert low["generated"][0, 0, 0] == low["frame"] and low["original"] is None
    scorer = DubScorer(drift=DubDrift(25.0), moments=WorstAndBest())
    scorer.add(frames[:3])
    assert scorer.moments.moments() == [] and "drift" in scorer.summary(25.0)  # no face analysis: nothing kept


def summary(**values) -> dict:
    return {"metrics": {name: {"computed": value is not None, **({"value": value} if value is not None else
                                                                 {"why": "-"})} for name, value in values.items()}}


def test_compare_dubs_sorts_best_first_in_each_metrics_direction():
    runs = {"a": summary(lse_c=6.0, lse_d=8.0, av_offset_frames=-3, lmd_px=None),
            "b": summary(lse_c=7.5, lse_d=7.0, av_offset_frames=1, lmd_px=2.0),
            "c": summary(lse_c=5.0, lse_d=9.0, av_offset_frames=0, lmd_px=3.0)}
    assert list(sort_versions(runs, SORT_AS_GIVEN)) == ["a", "b", "c"]
    assert list(sort_versions(runs, "lse_c")) == ["b", "a", "c"]  # higher is better
    assert list(sort_versions(runs, "lse_d")) == ["b", "a", "c"]  # lower is better
    assert list(sort_versions(runs, "av_offset_frames")) == ["c", "b", "a"]  # nearest 0
    assert list(sort_versions(runs, "lmd_px")) == ["b", "c", "a"]  # not computed: last
    assert list(sort_versions(runs, "ssim")) == ["a", "b", "c"]  # nowhere computed: as given
    with pytest.raises(SettingError, match="choose one of"):
        sort_versions(runs, "mouth_opening")  # no better direction
    scored = set(DubScorer().summary(25.0)["metrics"])
    directions = (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, *NEAREST_ZERO_IS_BETTER)
    assert sorted(SORT_CHOICES[1:]) == sorted(directions) and set(directions) <= scored


def test_compare_dubs_table_has_a_drift_row_per_metric_with_each_dubs_slope():
    from modules.evaluation.plots import summary_table

    def summary(slope):
        return {"metrics": {"ssim": {"computed": True, "value": 0.9}},
                "drift": {"metrics": {"ssim": {"computed": True, "slope_per_minute": slope},
                                      "lse_c": {"computed": False, "why": "no SyncNet given"}}}}

    lines = summary_table({"base": summary(-0.012), "adapter": summary(0.0031)}).splitlines()
    assert lines[-2].split() == ["ssim", "drift", "per", "minute", "-0.0120", "+0.0031"]
    assert lines[-1].split() == ["lse_c", "drift", "per", "minute", "n/a", "n/a"]
