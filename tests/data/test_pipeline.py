import numpy as np
import pytest

from looptrain.data.pipeline import make_eval_dataset, make_train_dataset, steps_per_epoch

N, L, B = 10, 3, 4


@pytest.fixture()
def arrays():
    x = np.arange(N * L, dtype=np.int32).reshape(N, L)
    return x, np.arange(N, dtype=np.int32)


def _labels(dataset):
    return [y.numpy().tolist() for _, y in dataset]


def test_batches_have_shapes_and_a_partial_last_batch(arrays):
    ds = make_train_dataset(arrays, batch_size=B, seed=1, num_epochs=1)
    assert ds.element_spec[0].shape.as_list() == [None, L]  # one trace for full and partial batches
    batches = list(ds)
    assert [len(y) for _, y in batches] == [4, 4, 2] and steps_per_epoch(N, B) == 3
    for x, y in batches:  # rows stay paired with their labels
        np.testing.assert_array_equal(x.numpy(), arrays[0][y.numpy()])


def test_each_epoch_is_a_fresh_seeded_permutation(arrays):
    stream = sum(_labels(make_train_dataset(arrays, batch_size=B, seed=1, num_epochs=3)), [])
    epochs = [stream[i * N:(i + 1) * N] for i in range(3)]
    assert all(sorted(e) == list(range(N)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(N))
    again = sum(_labels(make_train_dataset(arrays, batch_size=B, seed=1, num_epochs=3)), [])
    other = sum(_labels(make_train_dataset(arrays, batch_size=B, seed=2, num_epochs=3)), [])
    assert again == stream and other != stream


def test_start_step_resumes_exactly_where_the_stream_was(arrays):
    full = _labels(make_train_dataset(arrays, batch_size=B, seed=3, num_epochs=3))
    for start in range(len(full) + 1):
        resumed = _labels(make_train_dataset(arrays, batch_size=B, seed=3, num_epochs=3,
                                             start_step=start))
        assert resumed == full[start:]


def test_eval_dataset_keeps_file_order(arrays):
    assert sum(_labels(make_eval_dataset(arrays, batch_size=B)), []) == list(range(N))


@pytest.fixture()
def ragged():
    """60 padded texts of lengths 1..12 (some all padding) and their labels."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 13, size=60)
    x = np.zeros((60, 12), np.int32)
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(1, 50, size=length)
    return x, np.arange(60, dtype=np.int32), lengths


def test_length_buckets_are_trimmed_similar_and_resume_exactly(ragged):
    x, y, lengths = ragged
    make = dict(batch_size=4, seed=5, num_epochs=2, bucket_window=5)
    batches = [(bx.numpy(), by.numpy())
               for bx, by in make_train_dataset((x, y), lengths=lengths, **make)]
    assert len(batches) == 2 * steps_per_epoch(60, 4)
    for epoch in (batches[:15], batches[15:]):
        assert sorted(np.concatenate([by for _, by in epoch]).tolist()) == list(range(60))
    for bx, by in batches:  # trimmed to the longest text, rows still paired with their labels
        assert bx.shape[1] == max(lengths[by].max(), 1)
        np.testing.assert_array_equal(bx, x[by][:, :bx.shape[1]])
    spread = np.mean([np.ptp(lengths[by]) for _, by in batches])
    unbucketed = np.mean([np.ptp(lengths[by.numpy()]) for _, by in make_train_dataset(
        (x, y), batch_size=4, seed=5, num_epochs=2)])
    assert spread < unbucketed / 2
    labels = [by.tolist() for _, by in batches]
    for start in (0, 1, 7, 15, 22):
        assert _labels(make_train_dataset((x, y), lengths=lengths, start_step=start, **make)) == labels[start:]


def test_eval_by_length_covers_every_example_once(ragged):
    x, y, lengths = ragged
    batches = list(make_eval_dataset((x, y), batch_size=8, lengths=lengths))
    assert sorted(np.concatenate([by.numpy() for _, by in batches]).tolist()) == list(range(60))
    assert [bx.shape[1] for bx, _ in batches] == sorted(bx.shape[1] for bx, _ in batches)


@pytest.mark.parametrize("total,per_pipeline", [(2, 2), (4, 2), (3, 1)])
def test_replica_slices_put_every_global_batch_back_together(arrays, total, per_pipeline):
    from looptrain.engine.distribute import Replicas

    common = dict(batch_size=B, seed=5, num_epochs=2, start_step=1)
    batches = _labels(make_train_dataset(arrays, **common))  # global batches [4, 4, 2, 4, 4, 2]
    pipelines = [list(make_train_dataset(arrays, **common, replicas=Replicas(first, per_pipeline, total)))
                 for first in range(0, total, per_pipeline)]
    for step, batch in enumerate(batches):
        slices = [element for pipeline in pipelines
                  for element in pipeline[step * per_pipeline:(step + 1) * per_pipeline]]
        assert sum((y.numpy().tolist() for (_, y), _ in slices), []) == batch  # in order, all of it
        assert {int(n) for _, n in slices} == {len(batch)}  # each knows the global batch size
        sizes = [len(y) for (_, y), _ in slices]
        assert max(sizes) - min(sizes) <= 1  # nearly equal; 3 replicas of 2 leave one empty
        for (x, y), _ in slices:
            np.testing.assert_array_equal(x.numpy(), arrays[0][y.numpy()].reshape(-1, L))


@pytest.mark.parametrize("options", [{}, {"start_step": 2}, {"bucket_window": 2},
                                     {"transform": lambda batch, seeds: batch}])
def test_with_sizes_each_batch_carries_its_size_and_stays_the_same_batch(ragged, options):
    x, y, lengths = ragged
    make = dict(batch_size=7, seed=5, num_epochs=2, **options)  # 60 = 8 x 7 + 4: partial batches
    if "bucket_window" in options:
        make["lengths"] = lengths
    plain = list(make_train_dataset((x, y), **make))
    sized = list(make_train_dataset((x, y), with_sizes=True, **make))
    assert [int(size) for _, size in sized] == [len(by) for _, by in plain]
    assert 4 in [int(size) for _, size in sized]
    for (bx, by), ((sx, sy), _) in zip(plain, sized, strict=True):
        np.testing.assert_array_equal(sx.numpy(), bx.numpy())
        np.testing.assert_array_equal(sy.numpy(), by.numpy())
