"""The one dataset contract (jaxnets/data/contract.py) and both paths that follow it.

The tf.data path (get_dataset) and the numpy path (ArrayData) must give, for the same rows
and the same seed, the same examples in the same batches: every epoch, resumed mid-epoch,
as one stream of epochs, and per process.
"""

import ast
import itertools
import pathlib
import re

import numpy as np
import pytest

import data_fixtures
from jaxnets import data
from jaxnets.data import contract
from jaxnets.data.arrays import ArrayData

SEED = 3


# -- the rules ------------------------------------------------------------------------------

def test_shards_cover_every_row_once_in_blocks_differing_by_at_most_one():
    for n, count in itertools.product(range(0, 23), range(1, 6)):
        shards = [contract.shard_rows(n, i, count) for i in range(count)]
        rows = [r for s in shards for r in range(n)[s]]
        assert rows == list(range(n)), (n, count)  # contiguous, in process order
        sizes = [s.stop - s.start for s in shards]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [(s.start, s.stop) for s in (contract.shard_rows(10, i, 3) for i in range(3))] \
        == [(0, 4), (4, 7), (7, 10)]


def test_epoch_order_is_numpy_default_rng_of_seed_and_epoch():
    # the numpy path's rule before the two paths shared it: recorded results depend on it
    assert contract.epoch_order(0, 0, 10).tolist() == [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]
    np.testing.assert_array_equal(contract.epoch_order(5, 2, 23),
                                  np.random.default_rng([5, 2]).permutation(23))
    assert contract.epoch_seed(0, 0) == 2968811710  # stateless augmentation's epoch seed


def test_epoch_batches_cut_the_order_and_resume_at_a_batch():
    full = contract.epoch_batches(7, 1, 23, 4, steps_per_epoch=5)
    assert full.shape == (5, 4)
    np.testing.assert_array_equal(full.ravel(), contract.epoch_order(7, 1, 23)[:20])
    np.testing.assert_array_equal(contract.epoch_batches(7, 1, 23, 4, 5, start_step=3),
                                  full[3:])
    assert contract.epoch_batches(7, 1, 23, 4, 5, start_step=5).shape == (0, 4)


def test_steps_are_those_of_the_smallest_and_the_largest_shard():
    steps = contract.steps("x", 103, 30, 4, batch_size=8, eval_batch_size=4)
    assert (steps.per_epoch, steps.eval) == (25 // 8, 2)  # 25 or 26 rows; 8 or 7 rows
    assert contract.steps("x", 10, 0, 1, 10, 3) == contract.Steps(per_epoch=1, eval=0)


@pytest.mark.parametrize("call, message", [
    (lambda: contract.steps("mnist5k 'train'", 10, 5, 2, 8, 8),
     "mnist5k 'train' has 10 training examples, 5 per process: fewer than batch_size=8; "
     "lower batch_size"),
    (lambda: contract.check_start("arrays", 6, 5),
     "start_step=6 is outside 0..5 (steps_per_epoch of arrays)"),
    (lambda: contract.check_start("arrays", -1, 5),
     "start_step=-1 is outside 0..5 (steps_per_epoch of arrays)"),
    (lambda: contract.check_arguments(0, None, 0, 0, 1), "batch_size=0: must be a positive integer"),
    (lambda: contract.check_arguments(4, 2.5, 0, 0, 1),
     "eval_batch_size=2.5: must be a positive integer"),
    (lambda: contract.check_arguments(4, 4, -1, 0, 1), "seed=-1: must be an integer >= 0"),
    (lambda: contract.check_arguments(4, 4, 0, 2, 2),
     "process_index=2, process_count=2: need 0 <= process_index < process_count"),
    (lambda: contract.pad_rows({"x": np.zeros(5)}, 4),
     "a batch of 5 rows cannot be padded to 4: give it at most 4 rows"),
])
def test_errors_are_one_line_and_name_the_fix(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


def test_pad_rows_adds_zero_rows_with_mask_zero():
    batch = {"x": np.arange(6, dtype=np.int32).reshape(3, 2), "mask": np.ones(3, np.float32)}
    padded = contract.pad_rows(batch, 5)
    np.testing.assert_array_equal(padded["x"], [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]])
    assert padded["mask"].tolist() == [1, 1, 1, 0, 0] and padded["x"].dtype == np.int32
    assert contract.pad_rows(batch, 3) is batch
    empty = contract.pad_rows({"x": np.zeros((0, 2), np.int32)}, 2)  # an all-padding batch
    assert empty["mask"].tolist() == [0, 0] and empty["mask"].dtype == np.float32


def test_pad_to_multiple_adds_a_missing_mask_for_the_real_rows_only_when_it_pads():
    batch = {"x": np.ones((5, 2), np.float32), "label": [1, 2, 3, 4, 5]}
    padded = contract.pad_to_multiple(batch, 4)
    assert padded["mask"].tolist() == [1] * 5 + [0] * 3 and padded["mask"].dtype == np.float32
    assert padded["label"].tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert (padded["x"][5:] == 0).all() and padded["x"].shape == (8, 2)
    own = contract.pad_to_multiple({"x": np.ones(3), "mask": np.array([1., 0., 1.])}, 2)
    assert own["mask"].tolist() == [1, 0, 1, 0]  # its own mask, padded
    full = {"x": np.ones(8)}
    assert contract.pad_to_multiple(full, 4) is full  # nothing to pad: no mask added


def test_with_mask_casts_its_own_mask_or_adds_ones():
    assert contract.with_mask({"x": np.ones(2)})["mask"].tolist() == [1.0, 1.0]
    cast = contract.with_mask({"x": np.ones(2), "mask": np.array([1, 0])})["mask"]
    assert cast.dtype == np.float32 and cast.tolist() == [1.0, 0.0]


def test_no_data_module_imports_one_that_imports_it_back():
    folder = pathlib.Path(contract.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")}
    imports = {name: set() for name in modules}
    for name in modules:  # every import, lazy ones inside functions included
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "jaxnets.data":
                imports[name] |= {a.name if a.name in modules else "__init__" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxnets.data."):
                imports[name].add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                imports[name] |= {a.name.split(".")[2] if a.name.count(".") >= 2 else "__init__"
                                  for a in node.names if a.name.startswith("jaxnets.data")}

    def reaches(start, goal, seen=()):
        return any(m == goal or (m not in seen and reaches(m, goal, (*seen, m)))
                   for m in imports[start] - {"__init__"})  # a submodule's own package
    circles = sorted(m for m in modules if m != "__init__" and reaches(m, m))
    assert not circles, {m: sorted(imports[m]) for m in circles}


# -- both paths -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir():
    return data_fixtures.prepared_data_dir()


def _split(data_dir, name, split):
    from jaxnets.data import public, split_cache
    return split_cache.read_split(public.prepared_builder(name, data_dir), split)


def digits(data_dir, **kwargs):
    """(tf.data Dataset, ArrayData of the same rows as the tf.data path preprocesses them)."""
    from jaxnets.data import catalog
    mean, std = catalog.spec_for("mnist5k").channel_stats(1)

    def arrays(split):
        raw = _split(data_dir, "mnist5k", split)
        return {"image": (raw["image"].astype(np.float32) / 255.0 - mean) / std,
                "label": raw["label"].astype(np.int32)}
    sizes = dict(batch_size=16, eval_batch_size=12, seed=SEED, **kwargs)
    return (data.get_dataset("mnist5k", data_dir=data_dir, **sizes),
            ArrayData(arrays("train"), arrays("test"), **sizes))


def sentences(data_dir, **kwargs):
    from jaxnets.data import catalog, public, text
    sizes = dict(batch_size=8, eval_batch_size=5, seed=SEED, **kwargs)
    ds = data.get_dataset("rt_sentences", data_dir=data_dir, **sizes)
    builder, spec = public.prepared_builder("rt_sentences", data_dir), catalog.spec_for(
        "rt_sentences")

    def arrays(split):
        texts, labels = text.read_texts(builder, spec, split, data_dir)
        tokens, lengths = text.pad_sequences([ds.vocab.encode(t) for t in texts],
                                             ds.input_shape[0])
        return {"tokens": tokens, "lengths": lengths, "label": labels}
    return ds, ArrayData(arrays("train"), arrays("test"), **sizes)


PATHS = {"mnist5k": digits, "rt_sentences": sentences}


def assert_same_batches(tf_batches, np_batches):
    tf_batches, np_batches = list(tf_batches), list(np_batches)
    assert len(tf_batches) == len(np_batches) > 0
    for a, b in zip(tf_batches, np_batches):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", PATHS)
def test_the_same_seed_gives_the_same_batches_on_both_paths(data_dir, name):
    ds, arrays = PATHS[name](data_dir)
    assert (ds.steps_per_epoch, ds.num_train) == (arrays.steps_per_epoch, arrays.num_train)
    for epoch in (0, 1):
        assert_same_batches(ds.train_epoch(epoch), arrays.train_epoch(epoch))
    assert_same_batches(ds.train_epoch(1, start_step=2), arrays.train_epoch(1, start_step=2))
    spe = ds.steps_per_epoch
    stream = ds.train_epochs(0, start_step=2, epochs_per_pipeline=1)  # a new pipeline at 1
    assert_same_batches(itertools.islice(stream, 2 * spe - 2),
                        [*arrays.train_epoch(0, start_step=2), *arrays.train_epoch(1)])
    assert_same_batches(ds.eval_batches(), arrays.eval_batches())
    first = next(arrays.train_epoch(0))["label"]
    assert not np.array_equal(first, next(arrays.train_epoch(1))["label"])  # epochs differ


@pytest.mark.parametrize("name", PATHS)
def test_both_paths_give_each_process_the_same_rows(data_dir, name):
    seen = []
    for index in range(2):
        ds, arrays = PATHS[name](data_dir, process_index=index, process_count=2)
        assert (ds.num_train, ds.num_eval, ds.steps_per_epoch, ds.eval_steps) == (
            arrays.num_train, arrays.num_eval, arrays.steps_per_epoch, arrays.eval_steps)
        assert_same_batches(ds.train_epoch(1), arrays.train_epoch(1))
        assert_same_batches(ds.eval_batches(), arrays.eval_batches())
        seen.append(arrays.num_train)
    whole = PATHS[name](data_dir)[1]
    assert sum(seen) == whole.num_train and abs(seen[0] - seen[1]) <= 1
