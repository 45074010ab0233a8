"""Domain packs: the built-in ones load, a bad pack fails naming its file and key, and no module
outside ``opsloop/packs`` names the checkout domain's metrics, events, stages, labels or categories."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from opsloop.domain import Kind, Severity
from opsloop.packs import PackError, load_pack
from opsloop.packs.checkout import names

OPSLOOP = Path(__file__).resolve().parents[2] / "opsloop"


def test_builtin_packs_load_and_differ_where_the_domain_does():
    checkout, generic = load_pack("checkout"), load_pack("generic")
    assert checkout.revenue is not None and generic.revenue is None
    assert checkout.labels == ["merchant_id", "stage"]
    assert generic.metric_spec("anything_at_all").bad == "both"  # every KPI watched both ways
    assert generic.metric_spec("anything_at_all").detector == "ensemble"
    assert checkout.metric_spec(names.METRIC_SESSIONS).bad == "none"
    assert checkout.metric_spec(names.METRIC_P95_LATENCY).kind == Kind.hard
    assert generic.fallback.name == checkout.fallback.name == "kpi_anomaly"
    assert generic.actions.auto_execute == ["collect_diagnostics"]
    assert checkout.severity.revenue_per_hour[Severity.critical] > checkout.severity.revenue_per_hour[Severity.high]


def _copy_pack(tmp_path: Path, edit) -> Path:
    target = tmp_path / "mypack"
    shutil.copytree(OPSLOOP / "packs" / "generic", target)
    text = (target / "pack.yaml").read_text()
    (target / "pack.yaml").write_text(edit(text))
    return target


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("correlation_labels: []", "correlation_labels: []\nsevertiy: {}"), r"severtiy: unknown key"),
    (lambda t: t.replace("confidence: 0.6\n", "confidence: 1.6\n", 1), r"categories\.0\.confidence"),
    (lambda t: t.replace("- {match: [\"*cpu*\"", "- {bad: sideways, match: [\"*cpu*\""), r"metrics\.1\.bad"),
    (lambda t: t.replace("catalog: catalog.yaml", "catalog: nowhere.yaml"), r"actions\.catalog: no such file"),
    (lambda t: t + "\nruntime: [\n", r"not readable YAML"),
    (lambda t: t.replace("name: generic\n", ""), r"name: Field required"),
])
def test_a_bad_pack_fails_naming_file_and_key(tmp_path, edit, expected):
    directory = _copy_pack(tmp_path, edit)
    with pytest.raises(PackError, match=expected) as info:
        load_pack(directory)
    message = str(info.value)
    assert message.startswith(str(directory / "pack.yaml")) and "\n" not in message


def test_the_fallback_category_must_come_last(tmp_path):
    directory = _copy_pack(tmp_path, lambda t: t.replace(
        "  - name: kpi_anomaly\n", "  - name: kpi_anomaly\n    rules: [{evidence: [ensemble]}]\n"))
    with pytest.raises(PackError, match="last category is the fallback"):
        load_pack(directory)


def test_an_unknown_pack_name_says_which_packs_exist():
    with pytest.raises(PackError, match="built-in packs: checkout, generic"):
        load_pack("no-such-pack")


def _checkout_vocabulary() -> set[str]:
    """The checkout domain's own names: metrics and events (``sessions``/``orders`` are left out as
    plain English words), stage values, its blast-radius label and id column, and the categories no
    generic pack shares (a one-word category such as ``conversion`` is English too: it counts when
    quoted as a string)."""
    checkout, generic = load_pack("checkout"), load_pack("generic")
    words = {v for k, v in vars(names).items() if k.startswith(("METRIC_", "EVENT_"))}
    words -= {names.METRIC_SESSIONS, names.METRIC_ORDERS}
    words |= set(names.STAGES) | {"merchant_id", "order_id"}
    for category in set(checkout.category_names) - set(generic.category_names):
        words |= {category} if "_" in category else {f'"{category}"', f"'{category}'"}
    return words


def test_no_module_outside_the_packs_names_the_checkout_domain():
    alternatives = "|".join(re.escape(w) for w in sorted(_checkout_vocabulary()))
    pattern = re.compile(r"(?<![\w.])(" + alternatives + r")(?![\w])")
    hits = []
    for path in sorted(OPSLOOP.rglob("*.py")):
        if (OPSLOOP / "packs") in path.parents:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if m := pattern.search(line):
                hits.append(f"{path.relative_to(OPSLOOP.parent)}:{n}: {m.group(1)}")
    assert hits == [], "\n".join(hits)


def test_the_readme_pack_example_is_a_valid_pack(tmp_path):
    readme = (OPSLOOP.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# mypack/pack.yaml.*?)```", readme, re.S)
    assert block, "README has no pack example"
    target = tmp_path / "mypack"
    target.mkdir()
    (target / "pack.yaml").write_text(block.group(1))
    shutil.copy(OPSLOOP / "packs" / "generic" / "catalog.yaml", target / "catalog.yaml")
    (target / "runbooks").mkdir()
    pack = load_pack(target)
    assert pack.name == "payments" and pack.revenue is not None and pack.revenue.currency == "EUR"
    assert pack.fallback.name == "other" and pack.event_pairs[0].id_column == "charge_id"
