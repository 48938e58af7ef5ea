r"""Blocks of a batched problem: the one module that knows about batching.

A problem made of independent sub-problems (:func:`bilevel.problems.stack`, or a
family with batched tensors such as :func:`bilevel.problems.quadratic.paper001_grid`)
is block-separable,

.. math::

    f(x, y) = \sum_b f_b(x_{[b]}, y_{[b]}),\qquad g(x, y) = \sum_b g_b(x_{[b]}, y_{[b]}),

and carries ``problem.blocks``, a :class:`Blocks` naming each block and its
slices of ``x`` and ``y``. Gradients and Hessian-vector products of a sum are
already per block; only inner products and norms are not. Everything whose
update contains one (CG's step lengths, UniBiO's normalized step and Epoch-SGD
balls, MA-SOBA's projection) takes it through :meth:`Blocks.dot` /
:meth:`Blocks.norms` / :meth:`Blocks.spread`, so a batched run performs exactly
every block's own updates; :func:`bilevel.run` writes one row per
``(k, block)`` with a ``block`` column (the label), and a problem metric may
return one value per block. An unbatched problem uses :data:`WHOLE` (see
:func:`of`), whose operations are the plain ones -- bitwise the unbatched code.

>>> import torch
>>> b = Blocks.contiguous(["a", "b"], [1, 1], [2, 1])
>>> v = torch.tensor([3.0, 4.0, 2.0])
>>> b.dot(v, v, "y").tolist(), b.norms(v, "y").tolist()
([25.0, 4.0], [5.0, 5.0, 2.0])
>>> WHOLE.norms(v, "y")
tensor(5.3852)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

__all__ = ["Blocks", "WHOLE", "of"]

_WHICH = ("x", "y")


def _which(which: str) -> str:
    if which not in _WHICH:
        raise ValueError(f"which must be 'x' or 'y', got {which!r}.")
    return which


@dataclass(frozen=True, eq=False)
class Blocks:
    """Labels and ``x``/``y`` slices of the blocks of a block-separable problem.

    Attributes:
      labels: one label per block (what the ``block`` column of a trace holds).
      x: the slice of ``x`` of each block (contiguous, together covering ``x``).
      y: the slice of ``y`` of each block.
      batched: ``False`` only for :data:`WHOLE` (one block, the whole vectors:
        plain, unsegmented operations).

    Operations (``which`` is ``"x"`` or ``"y"``): :meth:`dot` (one inner product
    per block), :meth:`spread` (per-block values to their coordinates),
    :meth:`norms` (each coordinate's block norm), :meth:`split` (a tensor per
    block), :meth:`labels_where` (the blocks a mask touches). Iterating yields
    ``(label, x_slice, y_slice)``.
    """

    labels: tuple
    x: tuple
    y: tuple
    batched: bool = True
    _ids: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        for nm in ("labels", "x", "y"):
            object.__setattr__(self, nm, tuple(getattr(self, nm)))
        n = len(self.labels)
        if n == 0 or len(self.x) != n or len(self.y) != n:
            raise ValueError(f"Blocks: need one x slice and one y slice per label, at least one block; got "
                             f"{n} labels, {len(self.x)} x slices, {len(self.y)} y slices.")
        if len(set(map(repr, self.labels))) != n:
            raise ValueError(f"Blocks: labels must be distinct, got {list(self.labels)!r}.")
        if not self.batched:
            if n != 1 or self.x[0] != slice(None) or self.y[0] != slice(None):
                raise ValueError("Blocks: batched=False is the single whole block (use WHOLE).")
            return
        for nm in ("x", "y"):
            stop = 0
            for s in getattr(self, nm):
                if not isinstance(s, slice) or s.step not in (None, 1) or s.start is None or s.stop is None:
                    raise ValueError(f"Blocks: {nm} slices must be slice(start, stop) with explicit "
                                     f"bounds, got {s!r}.")
                if s.start != stop or s.stop < s.start:
                    raise ValueError(f"Blocks: the {nm} slices must be consecutive from 0 without gaps, "
                                     f"got {list(getattr(self, nm))!r}.")
                stop = s.stop

    @classmethod
    def contiguous(cls, labels: Sequence, sizes_x: Sequence[int], sizes_y: Sequence[int]) -> "Blocks":
        """Blocks of consecutive coordinates: block ``i`` has ``sizes_x[i]`` x and ``sizes_y[i]`` y entries."""
        def slices(sizes):
            out, o = [], 0
            for s in sizes:
                out.append(slice(o, o + int(s)))
                o += int(s)
            return out
        return cls(tuple(labels), slices(sizes_x), slices(sizes_y))

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[Any, slice, slice]]:
        return iter(zip(self.labels, self.x, self.y))

    def size(self, which: str) -> int | None:
        """Number of coordinates of ``x`` or ``y`` the blocks cover (``None`` for :data:`WHOLE`)."""
        return getattr(self, _which(which))[-1].stop if self.batched else None

    def check(self, dim_x: int, dim_y: int) -> None:
        """Raise ``ValueError`` unless the blocks cover exactly ``dim_x`` x and ``dim_y`` y coordinates."""
        if self.batched and (self.size("x"), self.size("y")) != (dim_x, dim_y):
            raise ValueError(f"Blocks cover {self.size('x')} x and {self.size('y')} y coordinates; the "
                             f"problem has dim_x = {dim_x}, dim_y = {dim_y}.")

    def ids(self, which: str, device=None) -> torch.Tensor:
        """Block index of every coordinate of ``x`` or ``y`` (cached per device)."""
        if not self.batched:
            raise ValueError("WHOLE has no block indices: it stands for an unbatched problem.")
        key = (_which(which), torch.device(device) if device is not None else torch.device("cpu"))
        out = self._ids.get(key)
        if out is None:
            out = torch.empty(self.size(which), dtype=torch.long)
            for i, s in enumerate(getattr(self, which)):
                out[s] = i
            out = out.to(key[1])
            self._ids[key] = out
        return out

    def dot(self, a: torch.Tensor, b: torch.Tensor, which: str) -> torch.Tensor:
        r"""Per-block inner products :math:`(a_{[i]}^\top b_{[i]})_i`; a 0-d ``torch.dot`` for :data:`WHOLE`."""
        if not self.batched:
            return torch.dot(a, b)
        return torch.zeros(len(self), dtype=a.dtype, device=a.device).index_add_(
            0, self.ids(which, a.device), a * b)

    def spread(self, values: torch.Tensor, which: str) -> torch.Tensor:
        """Per-block ``values`` (one per block) repeated over each block's coordinates (as is for :data:`WHOLE`)."""
        if not self.batched:
            return values
        return values[self.ids(which, values.device)]

    def norms(self, v: torch.Tensor, which: str) -> torch.Tensor:
        r"""Each coordinate's block norm :math:`\|v_{[i]}\|`; the 0-d norm :math:`\|v\|` for :data:`WHOLE`."""
        if not self.batched:
            return torch.linalg.vector_norm(v)
        return self.spread(self.dot(v, v, which).sqrt(), which)

    def split(self, t: torch.Tensor, which: str) -> list[torch.Tensor]:
        """``t`` cut into its blocks (``[t]`` for :data:`WHOLE`)."""
        return [t[s] for s in getattr(self, _which(which))]

    def labels_where(self, mask: torch.Tensor, which: str) -> list:
        """Labels of the blocks in which the boolean ``mask`` (over ``x`` or ``y``) has a ``True``."""
        if not self.batched:
            return list(self.labels) if bool(mask.any()) else []
        return [self.labels[i] for i in self.ids(which, mask.device)[mask].unique().tolist()]


#: the single block of an unbatched problem: plain (unsegmented) operations
WHOLE = Blocks((None,), (slice(None),), (slice(None),), batched=False)


def of(problem) -> Blocks:
    """``problem.blocks``, or :data:`WHOLE` for an unbatched problem."""
    return WHOLE if problem.blocks is None else problem.blocks
