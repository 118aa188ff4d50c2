"""Pre-registered A/B decisions: schema, reading sidecars, statistics, branches, CLI.

The seed case is seed 000 (the MLM decisive round): the decision written by hand was DROP;
the pre-registered rule applied to the published numbers gives MARGINAL.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from traingate_cli.decide_cmd import decide

from traingate.contract.formula import FormulaError
from traingate.contract.loading import load_contract
from traingate.contract.testids import problem_with_test_id
from traingate.decisions import (
    DecisionError,
    DecisionRule,
    Metric,
    Source,
    evaluate_rule,
    parse_predicate,
    two_proportion_test,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "mlm-decisive-round-v1.yaml"
RUNS = ROOT / "tests" / "fixtures" / "runs"
SEED_A, SEED_B = RUNS / "mlm_a", RUNS / "mlm_b"


def shipped_rule() -> DecisionRule:
    loaded = load_contract(CONTRACT)
    assert loaded.findings == [] and loaded.contract is not None
    (rule,) = loaded.contract.decisions
    return rule


RULE = shipped_rule()


def write_run(
    run: Path,
    resolver: tuple[int, int],
    harness: tuple[int, int],
    calibration: str,
) -> Path:
    """Sidecars in the layout DEC-MLM-001 reads (calibration as JSON number text)."""
    (run / "eval").mkdir(parents=True, exist_ok=True)
    (run / "eval" / "resolver.json").write_text(
        json.dumps({"acc_at_1": {"correct": resolver[0], "total": resolver[1]}})
    )
    (run / "eval" / "harness.json").write_text(
        json.dumps({"passed": harness[0], "total": harness[1]})
    )
    (run / "eval" / "calibration.json").write_text(f'{{"wrong_confidence_p90": {calibration}}}')
    return run


def minimal_rule(**overrides: Any) -> dict[str, Any]:
    """A small valid rule as plain data (one rate metric with a tie test, one branch)."""
    rule: dict[str, Any] = {
        "id": "DEC-TEST-001",
        "title": "test rule",
        "metrics": {
            "acc": {
                "kind": "rate",
                "higher_is_better": True,
                "successes": {"file": "eval.json", "field": "ok"},
                "trials": {"file": "eval.json", "field": "n"},
            }
        },
        "deltas": {"gap": "acc"},
        "tie": {"metric": "acc"},
        "branches": [{"when": "gap >= 1", "verdict": "UP"}, {"otherwise": True, "verdict": "NO"}],
    }
    rule.update(overrides)
    return rule


# --- the seed case -----------------------------------------------------------------------


def test_seed_000_gives_marginal_not_the_hand_written_drop() -> None:
    result = evaluate_rule(RULE, SEED_A, SEED_B)
    assert result.verdict == "MARGINAL"
    assert result.verdict != "DROP"
    assert result.taken is not None and result.taken.index == 3
    deltas = {d.name: d for d in result.deltas}
    assert deltas["gap"].value == -0.2 and deltas["gap"].unit == "pp"
    assert round(deltas["harness_delta"].value, 2) == -1.69
    assert deltas["calibration_delta"].value == 0.0 and deltas["calibration_delta"].unit == ""
    assert deltas["gap"].favours == "B" and deltas["calibration_delta"].favours == "neither"
    tie = result.tie
    assert tie is not None
    assert tie.sigma == pytest.approx(0.225, abs=5e-4)  # pp
    assert tie.abs_z == pytest.approx(0.89, abs=0.01)  # the seed's "0.9σ — tie"
    assert tie.z < 0 and not tie.significant
    assert tie.mde == pytest.approx(2.8016 * tie.sigma_unpooled, rel=1e-4)
    assert 0.62 < tie.mde < 0.64  # a 0.5 pp true effect would usually be missed at n = 10k
    truths = [(b.verdict, b.holds, b.taken) for b in result.branches]
    assert truths == [
        ("SCALE", False, False),
        ("SHIP", False, False),
        ("MARGINAL", True, True),
        ("DROP", True, False),
        ("CONFLICTED", True, False),
    ]


def test_every_number_read_names_its_file_and_field() -> None:
    result = evaluate_rule(RULE, SEED_A, SEED_B)
    assert len(result.readings) == 10  # 2 rates x 2 counts + 1 value, for each run
    expected = {
        ("A", "resolver", "successes"): "9730",
        ("A", "resolver", "trials"): "10000",
        ("B", "resolver", "successes"): "9750",
        ("B", "resolver", "trials"): "10000",
        ("A", "harness", "successes"): "79",
        ("B", "harness", "successes"): "86",
        ("A", "harness", "trials"): "415",
        ("B", "harness", "trials"): "415",
        ("A", "calibration", "value"): "0.949",
        ("B", "calibration", "value"): "0.949",
    }
    assert {(r.run, r.metric, r.role): r.raw for r in result.readings} == expected
    for r in result.readings:
        data = json.loads(Path(r.path).read_text())
        for key in r.field.split("."):
            data = data[key]
        assert str(data) == r.raw  # the number really is at that file and field
        assert r.path == str((SEED_A if r.run == "A" else SEED_B) / r.file)


# --- every branch, with exact boundary values ---------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        # gap exactly 1.0 pp → SCALE (≥, not >), whatever the secondary metrics do
        (((9850, 10000), (10, 415), "0.999"), ((9750, 10000), (86, 415), "0.949"), "SCALE"),
        # gap 0.99 pp with gains holding → SHIP, not SCALE
        (((9849, 10000), (86, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "SHIP"),
        # the seed's resolver with harness and calibration exactly level → SHIP
        (((9730, 10000), (86, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "SHIP"),
        # in the band, calibration 0.001 worse → gains do not hold → MARGINAL
        (((9730, 10000), (90, 415), "0.950"), ((9750, 10000), (86, 415), "0.949"), "MARGINAL"),
        # gap exactly −0.5 pp is still inside the band: MARGINAL, not DROP
        (((9700, 10000), (79, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "MARGINAL"),
        # gap −0.51 pp, gains gone → DROP
        (((9699, 10000), (79, 415), "0.949"), ((9750, 10000), (86, 415), "0.949"), "DROP"),
        # gap −0.51 pp, harness up and calibration better → CONFLICTED
        (((9699, 10000), (90, 415), "0.94"), ((9750, 10000), (86, 415), "0.949"), "CONFLICTED"),
        # gap −0.51 pp, harness up but calibration worse → DROP
        (((9699, 10000), (90, 415), "0.95"), ((9750, 10000), (86, 415), "0.949"), "DROP"),
    ],
)
def test_each_branch_is_reachable(tmp_path: Path, a: tuple, b: tuple, verdict: str) -> None:
    result = evaluate_rule(RULE, write_run(tmp_path / "a", *a), write_run(tmp_path / "b", *b))
    assert result.verdict == verdict
    assert sum(br.taken for br in result.branches) == 1


def test_exact_boundaries_are_exact(tmp_path: Path) -> None:
    one = evaluate_rule(
        RULE,
        write_run(tmp_path / "a1", (9850, 10000), (86, 415), "0.949"),
        write_run(tmp_path / "b1", (9750, 10000), (86, 415), "0.949"),
    )
    assert one.symbols["gap"] == 1.0
    half = evaluate_rule(
        RULE,
        write_run(tmp_path / "a2", (1949, 4000), (1, 3), "0.1"),
        write_run(tmp_path / "b2", (1951, 4000), (1, 3), "0.3"),
    )
    assert half.symbols["gap"] == -0.05 and half.symbols["calibration_delta"] == -0.2


def test_no_branch_holding_gives_no_verdict_and_exit_1(tmp_path: Path) -> None:
    data = minimal_rule(branches=[{"when": "gap >= 1", "verdict": "UP"}])
    rule = DecisionRule.model_validate(data)
    for run, ok in (("a", 5), ("b", 5)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval.json").write_text(json.dumps({"ok": ok, "n": 10}))
    result = evaluate_rule(rule, tmp_path / "a", tmp_path / "b")
    assert result.verdict is None and result.taken is None
    contract = tmp_path / "c.yaml"
    contract.write_text(
        "contract: C-TEST\nversion: 1.0.0\ntitle: t\nstatus: draft\n"
        "changelog: [{version: 1.0.0, date: 2026-01-01, change: x}]\n"
        f"decisions: [{json.dumps(data)}]\n"
    )
    out = CliRunner().invoke(
        decide,
        ["DEC-TEST-001", str(contract), "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")],
    )
    assert out.exit_code == 1, out.output
    assert "verdict: none" in out.output


# --- the schema: no hand-typed numbers, no escaping paths, known symbols only -------------


@pytest.mark.parametrize(
    "metric",
    [
        97.3,  # the number itself
        "97.3",
        {"kind": "value", "higher_is_better": True, "value": 97.3},
        {"kind": "value", "higher_is_better": True, "source": 97.3},
        {"kind": "value", "higher_is_better": True, "source": {"file": "x.json", "field": 97.3}},
        {
            "kind": "rate",
            "higher_is_better": True,
            "successes": 9730,
            "trials": {"file": "e.json", "field": "n"},
        },
    ],
)
def test_a_hand_typed_number_is_rejected(metric: object) -> None:
    with pytest.raises(ValidationError):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_the_rule_has_no_numeric_field_for_a_metric() -> None:
    """A metric is a kind, a direction, and where to read it: nowhere to type a number."""
    assert set(Metric.model_fields) == {
        "kind",
        "higher_is_better",
        "successes",
        "trials",
        "source",
        "description",
    }
    assert set(Source.model_fields) == {"file", "field"}
    assert all(f.annotation is not float for f in Source.model_fields.values())


@pytest.mark.parametrize(
    "file",
    ["../other/eval.json", "eval/../../x.json", "/etc/eval.json", "C:/eval.json", "a\\b.json"],
)
def test_path_escape_is_rejected_at_load(file: str) -> None:
    metric = {"kind": "value", "higher_is_better": True, "source": {"file": file, "field": "x"}}
    with pytest.raises(ValidationError, match="sidecar"):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_wrong_suffix_is_rejected() -> None:
    metric = {"kind": "value", "higher_is_better": True, "source": {"file": "a.yaml", "field": "x"}}
    with pytest.raises(ValidationError, match=r"\.jsonl"):
        DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}, deltas={}, tie=None))


def test_symlink_escape_is_rejected_at_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"ok": 1, "n": 2}))
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval.json").symlink_to(outside)
    rule = DecisionRule.model_validate(minimal_rule())
    with pytest.raises(DecisionError, match="outside the run directory"):
        evaluate_rule(rule, tmp_path / "a", tmp_path / "b")


YAML_RULE = """\
contract: C-TEST
version: 1.0.0
title: t
status: draft
changelog: [{{version: 1.0.0, date: 2026-01-01, change: x}}]
decisions:
  - id: DEC-TEST-001
    title: t
    metrics:
      acc:
        kind: rate
        higher_is_better: true
        successes: {{file: eval.json, field: ok}}
        trials: {{file: eval.json, field: n}}
    deltas: {{gap: acc}}
    tie: {{metric: acc}}
    branches:
      - {{when: "{when}", verdict: UP}}
      - {{otherwise: true, verdict: KEEP}}
"""


def load_findings(tmp_path: Path, when: str) -> list:
    path = tmp_path / "c.yaml"
    path.write_text(YAML_RULE.format(when=when))
    return load_contract(path).findings


def test_unknown_symbol_is_a_located_load_finding(tmp_path: Path) -> None:
    findings = load_findings(tmp_path, "gap >= 1.0 and gpa < sigma")
    (f,) = findings
    line = YAML_RULE.format(when="gap >= 1.0 and gpa < sigma").splitlines()[f.line - 1]
    assert f.code == "TG131" and f.severity == "error"
    assert line[f.column - 1 :].startswith("gpa < sigma")
    assert f.field == "decisions[0].branches[0].when"
    assert "did you mean `gap`" in f.message
    assert f.location().endswith(f"c.yaml:{f.line}:{f.column}")


@pytest.mark.parametrize(
    ("when", "code", "at"),
    [
        ("gap >= 1.0 &&", "TG130", "&"),
        ("gap", "TG130", "gap"),
        ("gap >= 1 >= 2", "TG130", "gap"),
        ("gap >= 1 and __import__('os') > 0", "TG132", "__import__"),
        ("gap >= 1 and (gap + 1).real > 0", "TG130", "(gap"),
        ("z > 2 or mde > foo", "TG131", "foo"),
        ("gap > 1 and gap < 1" + "0" * 400, "TG130", "1000"),
    ],
)
def test_bad_predicates_are_located(tmp_path: Path, when: str, code: str, at: str) -> None:
    (f,) = load_findings(tmp_path, when)
    line = YAML_RULE.format(when=when).splitlines()[f.line - 1]
    assert f.code == code, f.message
    assert line[f.column - 1 :].startswith(at), (line, f.column)


def test_statistics_are_known_only_with_a_tie_test() -> None:
    with pytest.raises(ValidationError, match="`sigma` is not a metric"):
        DecisionRule.model_validate(
            minimal_rule(tie=None, branches=[{"when": "sigma < 1", "verdict": "X"}])
        )
    rule = DecisionRule.model_validate(
        minimal_rule(branches=[{"when": "sigma < 1 and acc_a > acc_b", "verdict": "X"}])
    )
    assert {"sigma", "mde", "z", "p_value", "acc_a", "acc_b", "gap"} <= set(rule.symbols())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"deltas": {"gap": "nope"}}, "unknown metric `nope`"),
        ({"deltas": {"sigma": "acc"}}, "reserved"),
        ({"deltas": {"acc_a": "acc"}}, "reserved"),
        ({"deltas": {"ln": "acc"}}, "reserved"),
        ({"tie": {"metric": "nope"}}, "unknown metric"),
        (
            {
                "metrics": {
                    "cal": {
                        "kind": "value",
                        "higher_is_better": False,
                        "source": {"file": "c.json", "field": "p90"},
                    }
                },
                "deltas": {},
                "tie": {"metric": "cal"},
                "branches": [{"otherwise": True, "verdict": "X"}],
            },
            "value metric",
        ),
        (
            {
                "branches": [
                    {"otherwise": True, "verdict": "X"},
                    {"when": "gap > 0", "verdict": "Y"},
                ]
            },
            "last branch",
        ),
        ({"branches": [{"when": "gap > 0", "otherwise": True, "verdict": "Y"}]}, "not both"),
        ({"branches": [{"verdict": "Y"}]}, "not both"),
        ({"branches": [{"when": 1.0, "verdict": "Y"}]}, "predicate is text"),
        ({"branches": []}, "at least 1"),
        ({"id": "DEC-TEST-1"}, "pattern"),
        ({"tie": {"metric": "acc", "alpha": 0.0}}, "greater than 0"),
    ],
)
def test_rule_level_mistakes_are_rejected(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DecisionRule.model_validate(minimal_rule(**overrides))


def test_rate_and_value_sources_must_fit_the_kind() -> None:
    src = {"file": "e.json", "field": "x"}
    with pytest.raises(ValidationError, match="`trials` is missing"):
        DecisionRule.model_validate(
            minimal_rule(
                metrics={"acc": {"kind": "rate", "higher_is_better": True, "successes": src}}
            )
        )
    with pytest.raises(ValidationError, match="`source` is for kind: value"):
        DecisionRule.model_validate(
            minimal_rule(
                metrics={
                    "acc": {
                        "kind": "rate",
                        "higher_is_better": True,
                        "successes": src,
                        "trials": src,
                        "source": src,
                    }
                }
            )
        )


def test_shipped_rule_names_falsifiers_that_exist() -> None:
    assert RULE.falsified_by
    for test_id in RULE.falsified_by:
        assert problem_with_test_id(test_id, ROOT) is None, test_id


# --- predicates ----------------------------------------------------------------------------


def test_predicate_boolean_layer() -> None:
    p = parse_predicate("not (a >= 1 and b < 0) or c == 2")
    assert p.evaluate({"a": 1, "b": 0, "c": 2}) is True
    assert p.evaluate({"a": 1, "b": -1, "c": 3}) is False
    assert p.evaluate({"a": 0, "b": -1, "c": 3}) is True
    assert p.render({"a": 1, "b": -1, "c": 3}) == (
        "not (1 >= 1 (true) and -1 < 0 (true)) or 3 == 2 (false)"
    )
    text = p.source
    assert p.symbol_columns() == {"a": text.index("a >="), "b": text.index("b <"), "c": 26}
    assert parse_predicate("a > 1 or b > 1 and c > 1").evaluate({"a": 2, "b": 0, "c": 0})


@pytest.mark.parametrize(
    "text", ["", "   ", "a", "a and b > 1", "-(a > 1)", "True", "a if b else c"]
)
def test_predicate_needs_comparisons(text: str) -> None:
    with pytest.raises(FormulaError):
        parse_predicate(text)


# --- reading errors ------------------------------------------------------------------------


def _rule_for(file: str, ok_field: str = "ok", n_field: str = "n") -> DecisionRule:
    metric = {
        "kind": "rate",
        "higher_is_better": True,
        "successes": {"file": file, "field": ok_field},
        "trials": {"file": file, "field": n_field},
    }
    return DecisionRule.model_validate(minimal_rule(metrics={"acc": metric}))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"n": 10}', r"field `ok`: no key `ok`"),
        ('{"ok": "7", "n": 10}', r"field `ok` is not a finite number \(got \"7\"\)"),
        ('{"ok": true, "n": 10}', r"field `ok` is not a finite number"),
        ('{"ok": NaN, "n": 10}', r"field `ok` is not a finite number"),
        ('{"ok": null, "n": 10}', r"field `ok` is not a finite number"),
        ('{"ok": 0, "n": 0}', r"field `n` is 0: a rate needs at least one trial"),
        ('{"ok": 11, "n": 10}', r"field `ok` = 11 exceeds"),
        ('{"ok": 2.5, "n": 10}', r"field `ok` is a count"),
        ('{"ok": -1, "n": 10}', r"field `ok` is a count"),
        ('{"ok": 1, "n": 10', r"not valid JSON"),
        ("[1, 2]", r"`ok` is looked up in a list"),
        ('{"ok": 1e400, "n": 10}', r"field `ok` is out of range"),
        ('{"ok": 1, "n": ' + "9" * 5000 + "}", r"cannot be parsed as JSON"),
        ("[" * 100_000 + "]" * 100_000, r"nested too deeply"),
    ],
)
def test_reading_errors_name_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "e.json").write_text(text)
    with pytest.raises(DecisionError, match=match) as info:
        evaluate_rule(_rule_for("e.json"), tmp_path / "a", tmp_path / "b")
    assert str(tmp_path / "a" / "e.json") in str(info.value)
    assert info.value.run == "A" and info.value.file == str(tmp_path / "a" / "e.json")


def test_jsonl_reads_the_last_record_and_list_indices(tmp_path: Path) -> None:
    rule = _rule_for("log.jsonl", "evals[1].ok", "evals[1].n")
    for run, ok in (("a", 60), ("b", 50)):
        (tmp_path / run).mkdir()
        records = [{"evals": [{"ok": 0, "n": 1}, {"ok": 1, "n": 1}]}]
        records.append({"evals": [{"ok": 0, "n": 1}, {"ok": ok, "n": 100}]})
        (tmp_path / run / "log.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n\n")
    result = evaluate_rule(rule, tmp_path / "a", tmp_path / "b")
    assert result.symbols["gap"] == 10.0 and result.verdict == "UP"
    (tmp_path / "a" / "log.jsonl").write_text('{"evals": [{"ok": 1}]}\n{"evals": [')
    with pytest.raises(DecisionError, match="not valid JSON"):
        evaluate_rule(rule, tmp_path / "a", tmp_path / "b")
    (tmp_path / "a" / "log.jsonl").write_text('{"evals": [{"ok": 1, "n": 1}]}\n')
    with pytest.raises(DecisionError, match=r"index \[1\] is past the end"):
        evaluate_rule(rule, tmp_path / "a", tmp_path / "b")


def test_a_verdict_json_can_be_read(tmp_path: Path) -> None:
    metric = {
        "kind": "value",
        "higher_is_better": True,
        "source": {"file": "verdict.json", "field": "evaluated"},
    }
    rule = DecisionRule.model_validate(
        minimal_rule(
            metrics={"inv": metric},
            deltas={"more": "inv"},
            tie=None,
            branches=[
                {"when": "more > 0", "verdict": "A_MORE"},
                {"otherwise": True, "verdict": "NOT"},
            ],
        )
    )
    for run, n in (("a", 7), ("b", 5)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "verdict.json").write_text(json.dumps({"ok": True, "evaluated": n}))
    assert evaluate_rule(rule, tmp_path / "a", tmp_path / "b").verdict == "A_MORE"


# --- statistics ----------------------------------------------------------------------------


def brute_force_sigma_pp(sa: int, na: int, sb: int, nb: int) -> float:
    """σ of p̂_A − p̂_B from the pooled outcomes themselves (population variance), in pp."""
    outcomes = [1] * (sa + sb) + [0] * (na + nb - sa - sb)
    mean = sum(outcomes) / len(outcomes)
    variance = sum((x - mean) ** 2 for x in outcomes) / len(outcomes)
    return 100.0 * math.sqrt(variance * (1 / na + 1 / nb))


@st.composite
def two_arms(draw: st.DrawFn) -> tuple[int, int, int, int]:
    na, nb = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    return draw(st.integers(0, na)), na, draw(st.integers(0, nb)), nb


@settings(max_examples=150, deadline=None)
@given(two_arms())
def test_z_is_antisymmetric_and_sigma_matches_brute_force(arms: tuple[int, int, int, int]) -> None:
    sa, na, sb, nb = arms
    ab = two_proportion_test(sa, na, sb, nb)
    ba = two_proportion_test(sb, nb, sa, na)
    assert ba.delta == -ab.delta
    assert ba.sigma == ab.sigma and ba.sigma_unpooled == ab.sigma_unpooled and ba.mde == ab.mde
    assert ba.z == -ab.z and ba.p_value == ab.p_value
    assert ab.sigma == pytest.approx(brute_force_sigma_pp(sa, na, sb, nb), rel=1e-9, abs=1e-12)
    assert ab.delta == pytest.approx(100 * (sa / na - sb / nb), abs=1e-9)
    if ab.sigma > 0:
        assert ab.z == pytest.approx(ab.delta / ab.sigma)
    else:
        assert ab.delta == 0 and ab.z == 0


def test_seed_statistics_by_hand() -> None:
    tie = two_proportion_test(9730, 10000, 9750, 10000)
    pooled = 19480 / 20000
    assert tie.sigma == pytest.approx(100 * math.sqrt(pooled * (1 - pooled) * 2 / 10000))
    assert tie.z_alpha == pytest.approx(1.959964, abs=1e-6)
    assert tie.z_power == pytest.approx(0.841621, abs=1e-6)
    unpooled = math.sqrt(0.973 * 0.027 / 10000 + 0.975 * 0.025 / 10000)
    assert tie.mde == pytest.approx((1.959964 + 0.841621) * 100 * unpooled, rel=1e-6)
    assert two_proportion_test(9000, 10000, 8800, 10000).significant


def test_two_proportion_test_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        two_proportion_test(1, 0, 1, 1)
    with pytest.raises(ValueError):
        two_proportion_test(3, 2, 1, 1)


def test_statistics_through_files_match_the_pure_function() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = write_run(Path(tmp) / "a", (412, 500), (3, 9), "0.5")
        b = write_run(Path(tmp) / "b", (388, 480), (4, 9), "0.5")
        result = evaluate_rule(RULE, a, b)
    assert result.tie == two_proportion_test(412, 500, 388, 480, metric="resolver")
    assert result.symbols["sigma"] == result.tie.sigma and result.symbols["mde"] == result.tie.mde


# --- the command ---------------------------------------------------------------------------


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(decide, [*args, str(CONTRACT)])


def test_cli_seed_case_text() -> None:
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(SEED_B))
    assert out.exit_code == 0, out.output
    text = out.output
    for r in evaluate_rule(RULE, SEED_A, SEED_B).readings:
        assert any(
            r.raw in line and r.field in line and r.path in line for line in text.splitlines()
        ), r
    assert "deltas (A − B; rates in percentage points)" in text
    assert "= -0.2 pp" in text and "= -1.68675 pp" in text and "= 0.949 − 0.949" in text
    assert "σ = 0.225051 pp" in text and "|Δ|/σ = 0.888687" in text
    assert "MDE = 0.630487 pp at α = 0.05 two-sided, power 0.8" in text
    assert '"no difference" here is not "no effect"' in text
    assert "-0.2 >= -0.5 (true) and -1.68675 >= 0 (false) and 0 <= 0 (true)" in text
    assert "3. MARGINAL    true   gap >= -0.5   <- taken" in text
    assert text.rstrip().endswith("verdict: MARGINAL (branch 3: gap >= -0.5)")


def test_cli_seed_case_json() -> None:
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(SEED_B), "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["verdict"] == "MARGINAL" and data["taken"] == 3
    assert data["contract"] == "C-MLM-DECISIVE@1.0.0"
    assert data["tie"]["abs_z"] == pytest.approx(0.889, abs=1e-3)
    assert [b["holds"] for b in data["branches"]] == [False, False, True, True, True]
    assert {r["path"] for r in data["readings"]} >= {str(SEED_A / "eval" / "resolver.json")}


def test_cli_unknown_rule_suggests() -> None:
    out = run_cli("DEC-MLM-01", "--a", str(SEED_A), "--b", str(SEED_B))
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "contracts decide: no decision rule named DEC-MLM-01 (did you mean `DEC-MLM-001`?)"
    ]


def test_cli_missing_sidecar_names_the_path(tmp_path: Path) -> None:
    run_b = write_run(tmp_path / "b", (1, 2), (1, 2), "0.5")
    (run_b / "eval" / "harness.json").unlink()
    out = run_cli("DEC-MLM-001", "--a", str(SEED_A), "--b", str(run_b))
    assert out.exit_code == 2
    (line,) = out.output.strip().splitlines()
    assert str(run_b / "eval" / "harness.json") in line and "no such file" in line
    assert "Traceback" not in out.output and isinstance(out.exception, SystemExit)


def test_cli_missing_run_directory(tmp_path: Path) -> None:
    out = run_cli("DEC-MLM-001", "--a", str(tmp_path / "nope"), "--b", str(SEED_B))
    assert out.exit_code == 2
    assert (
        out.output.strip() == f"contracts decide: run A: {tmp_path / 'nope'}: no such run directory"
    )


def test_an_unquoted_yaml_boolean_verdict_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(YAML_RULE.format(when="gap > 0").replace("verdict: KEEP", "verdict: NO"))
    (f,) = load_contract(path).findings
    assert (
        f.field == "decisions[0].branches[1].verdict"
        and 'quote it, e.g. verdict: "NO"' in f.message
    )


def test_cli_refuses_a_rule_in_a_contract_with_errors(tmp_path: Path) -> None:
    broken = tmp_path / "c.yaml"
    broken.write_text(
        YAML_RULE.format(when="gap > 0").replace("title: t\n", "title: t\ntitle: u\n", 1)
    )
    out = CliRunner().invoke(
        decide, ["DEC-TEST-001", str(broken), "--a", str(SEED_A), "--b", str(SEED_B)]
    )
    assert out.exit_code == 2
    assert "validation error" in out.output and len(out.output.strip().splitlines()) == 1
