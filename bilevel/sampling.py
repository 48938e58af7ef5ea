r"""Minibatch samplers for finite-sum problems.

:class:`EpochSlices` is the sampler of the peers (benchopt's bilevel benchmark,
``benchmark_utils/minibatch_sampler.py``; PyTorch's ``DataLoader(shuffle=True)``
over pre-shuffled data): the samples :math:`0..n-1` are cut once into fixed
blocks of ``batch_size`` consecutive samples (the last one shorter if
``batch_size`` does not divide :math:`n`); at the start of every epoch the
order of the blocks is shuffled from the stream's generator, and each draw
returns the next block as a Python ``slice``. Every sample is seen exactly
once per epoch, and a problem indexes its data with a view (``A[batch]``)
instead of gathering an index tensor (``aten::index``), which on a
``64 x 100 x 100`` batch is most of a stochastic step's time.

Blocks are fixed, so a problem whose data are stored in a meaningful order
(sorted by label, by time) should shuffle them once when it is built.

The sampler keeps its position per generator (a weak reference: one position
per :class:`~bilevel.oracles.Oracles` stream), so two runs with the same seed
draw the same blocks and runs never share a position.
"""

from __future__ import annotations

import weakref

import torch

__all__ = ["EpochSlices", "slice_len"]


def slice_len(batch) -> int | None:
    """Number of samples in a ``slice`` batch (``None`` for anything else)."""
    if isinstance(batch, slice):
        return batch.stop - batch.start
    return None


class EpochSlices:
    """Contiguous minibatches, block order reshuffled every epoch.

    Args:
      n_samples: ``{"inner": n, "outer": m}`` (or one int for both kinds).

    ``sampler(generator, kind, batch_size)`` returns ``slice(start, stop)``;
    ``batch_size=None`` returns the whole set ``slice(0, n)``.

    >>> s = EpochSlices({"inner": 5, "outer": 4})
    >>> g = torch.Generator().manual_seed(0)
    >>> batches = [s(g, "inner", 2) for _ in range(3)]
    >>> sorted(b.start for b in batches), sum(b.stop - b.start for b in batches)
    ([0, 2, 4], 5)
    """

    def __init__(self, n_samples):
        if isinstance(n_samples, int) and not isinstance(n_samples, bool):
            n_samples = {"inner": n_samples, "outer": n_samples}
        if not isinstance(n_samples, dict) or not n_samples:
            raise ValueError(f"EpochSlices: n_samples must be an int or {{'inner': n, 'outer': m}}, "
                             f"got {n_samples!r}.")
        for k, v in n_samples.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EpochSlices: n_samples[{k!r}] must be an int >= 1, got {v!r}.")
        self.n_samples = dict(n_samples)
        self._state = weakref.WeakKeyDictionary()   # generator -> {kind: [batch_size, order, position]}

    def __call__(self, generator: torch.Generator, kind: str, batch_size: int | None) -> slice:
        if kind not in self.n_samples:
            raise ValueError(f"EpochSlices: unknown kind {kind!r}; choose among {sorted(self.n_samples)}.")
        n = self.n_samples[kind]
        if batch_size is None:
            return slice(0, n)
        b = min(int(batch_size), n)
        per_kind = self._state.setdefault(generator, {})
        st = per_kind.get(kind)
        if st is None or st[0] != b or st[2] >= len(st[1]):
            n_blocks = -(-n // b)
            order = torch.randperm(n_blocks, generator=generator, device=generator.device).tolist()
            st = per_kind[kind] = [b, order, 0]
        start = st[1][st[2]] * b
        st[2] += 1
        return slice(start, min(start + b, n))
