"""`python -m jaxnets.data` and the promise that importing jaxnets.data stays cheap."""

import subprocess
import sys

import numpy as np

import data_fixtures


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_import_loads_neither_tensorflow_nor_jax():
    done = run("-c", "import sys, jaxnets.data; "
                     "print(sorted(m for m in ('tensorflow', 'jax') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_list_names_every_dataset():
    done = run("-m", "jaxnets.data", "--list")
    assert done.returncode == 0, done.stderr
    for name in ("rt_sentences", "mnist5k", "mnist", "cifar10", "imagenette", "glue/sst2"):
        assert name in done.stdout


def test_a_sequence_task_shows_its_sizes_and_pairs():
    done = run("-m", "jaxnets.data", "--dataset=number_words", "--examples=2")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert "train 9,000 examples, eval 1,000; vocabulary 33 tokens, source vocabulary 13" \
        in done.stdout
    number, words = lines[-1].split(" -> ")
    from jaxnets.data import sequence_tasks
    assert words == " ".join(sequence_tasks.number_to_words(int(number)))


def test_describe_shows_sizes_balance_and_examples():
    from jaxnets.data import __main__ as cli
    from jaxnets.data import catalog, public, rt_sentences

    builder = public.prepared_builder("rt_sentences", data_fixtures.prepared_data_dir())
    spec = catalog.SPECS["rt_sentences"]
    lines = {line.split()[0]: line for line in cli.describe(builder, spec).splitlines()[2:]}
    for split in ("train", "test"):
        rows = [r for r in data_fixtures.rt_rows()
                if r[1] != 0 and rt_sentences.split_of(r[0]) == split]
        negative = sum(r[1] < 0 for r in rows)
        assert f"{len(rows):,} examples" in lines[split]
        assert f"negative {negative:,} ({negative / len(rows):.1%})" in lines[split]
    assert cli.show_examples(builder, spec, 2).count("\n  [") == 2


def test_describe_marks_a_split_whose_labels_are_withheld(monkeypatch):
    from jaxnets.data import __main__ as cli
    from jaxnets.data import catalog, public

    builder = public.prepared_builder("rt_sentences", data_fixtures.prepared_data_dir())
    test_labels = np.full(7, -1)  # as GLUE's test splits: -1 for every example
    monkeypatch.setattr(cli, "labels_of", lambda b, spec, split: (
        test_labels if split == "test" else np.array([0, 1, 1])))
    lines = cli.describe(builder, catalog.SPECS["rt_sentences"]).splitlines()
    assert any(line.split() == ["test", "7", "examples:", "unlabelled"] for line in lines)
    assert any("3 examples: negative 1 (33.3%)" in line for line in lines)


def test_ascii_art_has_one_char_per_pixel_column():
    image = np.zeros((28, 28, 1), np.uint8)
    image[10:20, 10:20] = 255
    from jaxnets.data import __main__ as cli

    art = cli.ascii_art(image).splitlines()
    assert len(art) == 14 and all(len(line) == 4 + 28 for line in art)
    assert "@" in art[6] and "@" not in art[0]

