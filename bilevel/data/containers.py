"""What the loaders return: small frozen dataclasses of numpy arrays plus metadata."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

__all__ = ["ArraySplit", "SNLISplit", "SNLI_LABELS"]

#: Label names of SNLI in index order (the convention of the HuggingFace and
#: InferSent loaders): 0 entailment, 1 neutral, 2 contradiction.
SNLI_LABELS = ("entailment", "neutral", "contradiction")


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySplit:
    """One split of a dataset with a feature array and a target array.

    Attributes:
      x: features. MNIST: ``uint8`` images of shape ``(n, 28, 28)`` with values
        0..255 exactly as in the IDX files. space_ga: ``float64`` of shape
        ``(n, d)``; ``meta["feature_names"]`` names the columns.
      y: targets. MNIST: ``int64`` digits 0..9. space_ga: ``float64``
        ``ln(votes / population)``.
      meta: provenance: ``dataset``, ``split``, ``origin``, ``source``,
        ``license``, ``sha256`` of the file read, ``split_sizes`` and
        dataset-specific fields (see the loader's docstring).
    """

    x: np.ndarray
    y: np.ndarray
    meta: Mapping[str, Any]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def flat(self, dtype=np.float32) -> np.ndarray:
        """Features as ``(n, prod(x.shape[1:]))``; ``uint8`` images are scaled to [0, 1].

        >>> s = ArraySplit(np.full((2, 2, 2), 255, np.uint8), np.zeros(2, np.int64), {})
        >>> s.flat().tolist()
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
        """
        x = self.x.reshape(self.x.shape[0], -1)
        if x.dtype == np.uint8:
            return x.astype(dtype) / dtype(255.0)
        return x.astype(dtype, copy=True)


@dataclasses.dataclass(frozen=True, eq=False)
class SNLISplit:
    """One SNLI split as padded token ids plus the word vectors they index.

    Attributes:
      premise: ``int32`` ``(n, L1)`` token ids of sentence 1, right-padded with 0.
      premise_lengths: ``int32`` ``(n,)`` number of tokens of each premise.
      hypothesis: ``int32`` ``(n, L2)`` token ids of sentence 2, padded with 0.
      hypothesis_lengths: ``int32`` ``(n,)``.
      labels: ``int64`` ``(n,)`` in ``0..2`` (see :data:`SNLI_LABELS`); pairs
        without a gold label (``"-"``) are not included.
      pair_ids: SNLI ``pairID`` strings, for tracing rows back to the corpus.
      vocab: ``(V,)`` token strings; ``vocab[0] == "<pad>"``,
        ``vocab[1] == "<unk>"`` (tokens without a word vector).
      vectors: ``float32`` ``(V, d)`` word vectors; rows 0 and 1 are zero.
      meta: provenance (``origin``, ``source``, ``embedding``, ``license``,
        ``sha256``, ``split_sizes``, substitutions).
    """

    premise: np.ndarray
    premise_lengths: np.ndarray
    hypothesis: np.ndarray
    hypothesis_lengths: np.ndarray
    labels: np.ndarray
    pair_ids: np.ndarray
    vocab: np.ndarray
    vectors: np.ndarray
    meta: Mapping[str, Any]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def mean_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean word vector of each premise and hypothesis, ``(n, d)`` each.

        Unknown tokens count with their zero vector; padding is excluded.

        >>> v = np.array([[0, 0], [0, 0], [1, 3], [3, 1]], np.float32)
        >>> s = SNLISplit(np.array([[2, 3]]), np.array([2]), np.array([[2, 0]]),
        ...               np.array([1]), np.array([0]), np.array(["a"]),
        ...               np.array(["<pad>", "<unk>", "x", "y"]), v, {})
        >>> [a.tolist() for a in s.mean_vectors()]
        [[[2.0, 2.0]], [[1.0, 3.0]]]
        """
        return (_mean(self.premise, self.premise_lengths, self.vectors),
                _mean(self.hypothesis, self.hypothesis_lengths, self.vectors))

    def sentence_features(self) -> np.ndarray:
        r"""Pair features :math:`[u, v, |u - v|, u \odot v]` of the mean vectors, ``(n, 4d)``.

        The combination of Conneau et al. (2017, InferSent) used by the UniBiO
        code on top of its RNN encoder; here ``u`` and ``v`` are plain means.
        """
        u, v = self.mean_vectors()
        return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


def _mean(ids: np.ndarray, lengths: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    summed = vectors[ids].sum(axis=1)  # padding id 0 has a zero vector
    return (summed / np.maximum(lengths, 1)[:, None]).astype(np.float32)
