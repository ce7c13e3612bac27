"""grain's private batched read is used in one place, and its fallback reads the same records."""

import grain
import pytest

from attnlab.data import sources


class CountingSource:
    """Records ``{"i": i}``; counts the batched reads it serves."""

    def __init__(self, n):
        self.n, self.batched_reads = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"i": int(i)}

    def _getitems(self, indices):
        self.batched_reads += 1
        return [{"i": int(i)} for i in indices]


@pytest.mark.parametrize("batched", [True, False])
def test_read_records_gives_the_records_of_one_read_per_index(monkeypatch, batched):
    monkeypatch.setattr(sources, "_BATCHED", batched)
    source = CountingSource(10)
    stream = grain.MapDataset.source(source).map(lambda r: r["i"] * 10).shuffle(seed=3)
    indices = [7, 0, 3, 3, 9]
    assert sources.read_records(stream, indices) == [stream[i] for i in indices]
    assert (source.batched_reads > 0) == batched
