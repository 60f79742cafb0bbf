"""The recorded results: every table that quotes them is what the records generate."""

import json
import os
import re

import pytest

from jaxnets import configs
from jaxnets.experiments import record
from jaxnets.train.config import ConfigError


def test_every_preset_has_a_record():
    recorded = {name for name, _ in record.record_dirs()}
    assert recorded == set(configs.PRESETS)


def test_readme_results_table_is_the_generated_one():
    with open(record.README) as f:
        readme = f.read()
    block = "\n".join([record.RESULTS_MARKERS[0], *record.table(), record.RESULTS_MARKERS[1]])
    assert block in readme, "run: python -m jaxnets.experiments.record --tables_only"


def test_results_md_and_record_blocks_are_the_generated_ones():
    with open(record.RESULTS_MD) as f:
        assert f.read() == record.results_md()
    for _, folder in record.record_dirs():
        with open(os.path.join(record.RECORDS, folder, "README.md")) as f:
            assert record.record_block(folder) in f.read(), folder


@pytest.mark.parametrize("name", list(configs.PRESETS))
def test_preset_docstrings_quote_the_record_instead_of_a_figure(name):
    doc = configs.PRESETS[name].__doc__
    assert "experiments/results.md" in doc
    assert not re.search(r"\d%|\d s\b|\d bits", doc), doc  # results, times, bits/char


def test_each_record_names_its_machine_load_and_code():
    for _, folder in record.record_dirs():
        with open(os.path.join(record.RECORDS, folder, "record.json")) as f:
            rec = json.load(f)
        assert rec["clean"], f"{folder} was recorded from uncommitted code"
        assert len(rec["commit"]) == 40 and len(rec["load_before"]) == 3
        assert rec["machine"]["cores"] >= 1 and rec["command_seconds"] > 0


def test_replace_block_keeps_the_text_around_it():
    markers = ("<!-- A -->", "<!-- /A -->")
    text = "before\n<!-- A -->\nold\n<!-- /A -->\nafter\n"
    assert record.replace_block(text, markers, "new") == (
        "before\n<!-- A -->\nnew\n<!-- /A -->\nafter\n")
    assert record.replace_block("only\n", markers, "new") == (
        "only\n\n<!-- A -->\nnew\n<!-- /A -->\n")


def test_headline_picks_the_presets_measure():
    base = {"eval": {"accuracy": 0.5}}
    assert record.headline(base) == "50.00% test accuracy"
    assert record.headline({**base, "exact_match": 0.901}).startswith("90.1% exact")
    assert record.headline({**base, "bits_per_char": 2.2689}).startswith("2.269 bits/char")


@pytest.mark.slow
def test_a_record_is_the_presets_command_with_its_files_and_the_tables_follow(
        tmp_path, monkeypatch):
    monkeypatch.setattr(record, "RECORDS", str(tmp_path / "experiments"))
    monkeypatch.setattr(record, "RESULTS_MD", str(tmp_path / "experiments" / "results.md"))
    monkeypatch.setattr(record, "README", str(tmp_path / "README.md"))
    (tmp_path / "README.md").write_text("# x\n")
    folder = record.record("rnn_translate", "a" * 40, True, keep_runs=str(tmp_path / "runs"))
    out = tmp_path / "experiments" / folder
    assert {"summary.json", "config.json", "train.log", "record.json"} <= set(os.listdir(out))
    rec = json.loads((out / "record.json").read_text())
    assert rec["command"] == "python -m jaxnets.experiments.run --model=rnn_translate"
    assert rec["commit"] == "a" * 40 and rec["command_seconds"] > 0
    with open(out / "summary.json") as f:  # the run's own file, as it wrote it
        assert f.read() == (tmp_path / "runs" / folder / "summary.json").read_text()
    record.write_tables()
    row = record.table()[2]
    assert row.startswith("| `rnn_translate` |") and "exact" in row
    assert row in (tmp_path / "README.md").read_text()
    assert record.record_block(folder) in (out / "README.md").read_text()
    with pytest.raises(ConfigError, match="exists; give an empty directory"):
        record.record("rnn_translate", "a" * 40, True, keep_runs=str(tmp_path / "runs"))
