"""Reading sidecars: every failure names its file and field; JSONL and list indices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from traingate.decisions import DecisionError, DecisionRule, evaluate_rule

from .conftest import minimal_rule, write_sidecar

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
        write_sidecar(tmp_path / run / "e.json", text)
    with pytest.raises(DecisionError, match=match) as info:
        evaluate_rule(_rule_for("e.json"), tmp_path / "a", tmp_path / "b")
    assert str(tmp_path / "a" / "e.json") in str(info.value)
    assert info.value.run == "A" and info.value.file == str(tmp_path / "a" / "e.json")


def test_jsonl_reads_the_last_record_and_list_indices(tmp_path: Path) -> None:
    rule = _rule_for("log.jsonl", "evals[1].ok", "evals[1].n")
    for run, ok in (("a", 60), ("b", 50)):
        records = [{"evals": [{"ok": 0, "n": 1}, {"ok": 1, "n": 1}]}]
        records.append({"evals": [{"ok": 0, "n": 1}, {"ok": ok, "n": 100}]})
        write_sidecar(tmp_path / run / "log.jsonl", "\n".join(map(json.dumps, records)) + "\n\n")
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
        write_sidecar(tmp_path / run / "verdict.json", {"ok": True, "evaluated": n})
    assert evaluate_rule(rule, tmp_path / "a", tmp_path / "b").verdict == "A_MORE"
