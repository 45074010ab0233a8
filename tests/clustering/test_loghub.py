"""Log templates on real logs (Loghub 2k, Zhu et al.): opsloop's one default (masks + Drain) groups
the lines of each event at least as well as drain3 with its defaults, in the same run, on the systems
where the defaults were once better, and keeps apart the events that differ in one short word."""

from __future__ import annotations

import pandas as pd
import pytest
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from opsloop.clustering.drain import LogTemplateMiners, grouping_accuracy

from ..conftest import shared_dataset


def _system(name: str) -> pd.DataFrame:
    path = shared_dataset("loghub_2k", name, f"{name}_2k.log_structured.csv")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def openstack():
    frame = _system("OpenStack")
    mined = LogTemplateMiners().mine(pd.DataFrame({"service": "OpenStack", "message": frame["Content"]}))
    return frame, mined


def test_grouping_accuracy_counts_only_events_grouped_exactly():
    truth = pd.Series(["a", "a", "b", "b", "c"])
    assert grouping_accuracy(truth, pd.Series([1, 1, 2, 2, 3])) == 1.0
    assert grouping_accuracy(truth, pd.Series([1, 1, 2, 3, 4])) == pytest.approx(3 / 5)  # b split
    assert grouping_accuracy(truth, pd.Series([1, 1, 2, 2, 2])) == pytest.approx(2 / 5)  # b and c merged
    with pytest.raises(ValueError):
        grouping_accuracy(truth, pd.Series([1]))


@pytest.mark.parametrize("system", ["OpenStack", "Mac", "BGL"])
def test_at_least_drain3_defaults_on_real_logs(system):
    frame = _system(system)
    ours = LogTemplateMiners().mine(pd.DataFrame({"service": system, "message": frame["Content"]})).template_id
    default = TemplateMiner(None, TemplateMinerConfig())
    theirs = pd.Series([default.add_log_message(m)["cluster_id"] for m in frame["Content"]])
    ours_acc, theirs_acc = grouping_accuracy(frame["EventId"], ours), grouping_accuracy(frame["EventId"], theirs)
    assert ours_acc >= theirs_acc, f"{system}: opsloop {ours_acc:.4f} < drain3 defaults {theirs_acc:.4f}"


def test_http_methods_and_short_lifecycle_events_stay_apart(openstack):
    frame, mined = openstack
    ids = mined.template_id.to_numpy()
    # E24-E26: DELETE/GET/POST request lines (paths with tenant ids); E20-E23: "VM Paused/Resumed/
    # Started/Stopped (Lifecycle Event)" (one word of six differs)
    for events in (["E24", "E25", "E26"], ["E20", "E21", "E22", "E23"]):
        groups = pd.crosstab(frame["EventId"], ids).loc[events]
        groups = groups.loc[:, (groups > 0).any()]
        assert groups.shape == (len(events), len(events)), f"{events} not one template each:\n{groups}"
        assert ((groups > 0).sum(axis=1) == 1).all()
