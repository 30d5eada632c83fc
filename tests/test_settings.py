"""The papers' published settings (sae/report/settings.csv) against the paper-scale protocol, and
the deviations ledger (sae/report/deviations.csv): every published value is what the protocol
runs with, or the ledger says why not; every ledger item names something that exists."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sae.base import catalog as C
from sae.config import protocol as P
from sae.config import validate
from sae.report import published as PUB
from sae.report import settings as S
from sae.report.scale import reductions

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "sae" / "report"


@pytest.fixture(scope="module")
def paper_raw() -> dict:
    """conf/ composed at scale=paper, as DVC's Hydra integration composes params.yaml."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=["scale=paper"])
    OmegaConf.resolve(cfg)
    return OmegaConf.to_container(cfg)


@pytest.fixture(scope="module")
def paper(paper_raw):
    return validate(paper_raw)


@pytest.fixture(scope="module")
def tables():
    settings = S.read_rows(DATA / "settings.csv", S.SETTINGS_COLUMNS)
    ledger = S.read_rows(DATA / "deviations.csv", S.LEDGER_COLUMNS)
    published = PUB.read_published(DATA / "published.csv")
    sources = {p: sorted({n.source for n in published if n.paper == p}) for p in C.PAPERS}
    return settings, ledger, published, sources


def test_every_stage_of_the_paper_scale_protocol_resolves(paper):
    """run_config / finetune_settings / sweep_settings for every (paper, dataset, model)."""
    for kind, p, d, m in P.stages(paper):
        if kind == "sweep":
            assert P.sweep_settings(paper, p, d).hidden == 1000
        else:
            cfg = P.run_config(paper, p, d, m)
            assert cfg.loop.epochs >= 1
        if kind == "finetune":
            assert P.finetune_settings(paper, p, d).epochs >= 1


def test_published_settings_hold_or_are_in_the_ledger(paper, tables):
    settings, ledger, _, sources = tables
    assert S.problems(paper, settings, ledger, sources) == []
    # every paper has published settings, and every row resolves to at least one value
    assert {r["paper"] for r in settings} == set(C.PAPERS)
    for r in settings:
        assert S.effective(paper, r["paper"], r["key"], r["dataset"], r["model"]), r


def test_known_deviations_are_ledgered_not_hidden(paper, tables):
    """The conf's knowing deviations resolve to non-paper values AND have their ledger rows."""
    settings, ledger, _, _ = tables
    cases = [("amini2018", "model.dae.level", "any", "dae", 0.25, "model.dae.level")]
    for paper_id, key, dataset, model, ours, item in cases:
        values = {t.value for t in S.effective(paper, paper_id, key, dataset, model)}
        assert values == {ours}
        assert S.ledger_rows(ledger, paper_id, item)
    named = {(r["paper"], r["item"]) for r in ledger}
    assert ("seyyedsalehi2017", "citation") in named             # the unconfirmed venue / year
    assert ("seyyedsalehi2017", "eq. 11-12 gradient") in named   # the printed gradient mismatch
    assert any(p == "makhzani2014" and i.startswith("Table 4") for p, i in named)  # quoted DBN / DBM rows


def test_a_missing_ledger_row_is_caught(paper, tables):
    settings, ledger, _, sources = tables
    pruned = [r for r in ledger if r["item"] != "model.dae.level"]
    found = S.problems(paper, settings, pruned, sources)
    assert len(found) == 3 and all("amini2018.model.dae.level" in f for f in found), found  # one per dataset


def test_a_protocol_that_leaves_the_paper_is_caught(paper_raw, tables):
    settings, ledger, _, sources = tables
    raw = copy.deepcopy(paper_raw)
    raw["makhzani2014"]["model"]["ksparse"]["k"] = 30          # sec. 4.4 says 25
    raw["arpit2016"]["protocol"]["lr"] = 0.01                  # outside (0.001, 0.005)
    found = S.problems(validate(raw), settings, ledger, sources)
    assert any("model.ksparse.k " in f for f in found) and any("protocol.lr" in f for f in found), found


def test_every_ledger_item_names_something(paper, tables):
    _, ledger, _, sources = tables
    for r in ledger:
        assert S.item_problem(paper, r["paper"], r["item"], sources.get(r["paper"], ())) is None, r
    assert S.item_problem(paper, "amini2018", "model.nonexistent.lr") is not None
    assert S.item_problem(paper, "amini2018", "citation") is not None   # 000's citation is confirmed
    assert S.item_problem(paper, "makhzani2014", "Table 9 rows", ["Table 1"]) is not None


def test_ledger_ours_is_the_paper_scale_value(paper, tables):
    """Where `ours` is a plain value and the item a params path, it is what conf/ composes."""
    _, ledger, _, _ = tables
    checked = 0
    for r in ledger:
        if S.is_named(r["item"]):
            continue
        try:
            ours = S.parse_value(r["ours"])
        except Exception:   # prose ("100 (MNIST; 40 NORB; 136 SVHN)")
            continue
        if isinstance(ours, (int, float, list)) and not isinstance(ours, bool):
            values = [v for _, v in S.raw(paper, r["paper"], r["item"])]
            assert values and all(S.same(ours, v) for v in values), (r, values)
            checked += 1
    assert checked >= 20


def test_published_table_i_agrees_with_the_settings(tables):
    """000 Table I is both a published table and published settings: the two say the same."""
    settings, _, published, _ = tables
    by_key = {(r["model"], r["key"]): S.parse_value(r["value"]) for r in settings if r["paper"] == "amini2018"}
    for n in PUB.select(published, "amini2018", "Table I"):
        key = ("any", "finetune.settings.weight_decay") if n.metric == "finetune_weight_decay" else \
            (n.ref.name, f"model.{n.ref.name}.{n.metric}")
        assert S.same(by_key[key], n.value), n


def test_values_and_intervals_compare():
    assert S.same(S.parse_value("(0.001, 0.005)"), 0.002) and not S.same(S.parse_value("(0.001, 0.005)"), 0.01)
    assert S.same(1, [1.0]) and S.same(S.parse_value("[relu, sigmoid]"), ["sigmoid", "relu"])
    assert not S.same(True, 1) and S.same(0.0001, 1e-4)


def test_reductions_list_what_a_run_cuts(paper, paper_raw):
    raw = copy.deepcopy(paper_raw)
    raw["datasets"] = [*raw["datasets"], "mnist5k"]
    raw["makhzani2014"]["datasets"] = ["mnist5k"]                  # a stand-in for MNIST
    raw["makhzani2014"]["train"]["mnist5k"] = {"epochs": 7}        # a cut budget
    raw["makhzani2014"]["finetune"]["settings"]["momentum"] = 0.5
    rows = {(r.setting, r.stage, r.paper, r.this_run) for r in reductions(validate(raw), paper, "makhzani2014")}
    assert ("epochs", "train on mnist5k: every model", "5000", "7") in rows
    assert ("momentum", "finetune on mnist5k", "0.25", "0.5") in rows
    assert ("dataset", "prepare@mnist5k", "mnist", "mnist5k") in rows
    assert ("makhzani2014.datasets", "every stage", "[mnist, norb]", "[mnist5k]") in rows
    assert reductions(paper, paper, "makhzani2014") == []     # the paper scale reduces nothing
