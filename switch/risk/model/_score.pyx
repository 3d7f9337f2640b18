# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The fraud scorer, compiled: the twin of switch.risk.model.score.PureScorer.

Its floats must equal the twin's bit for bit, so the C code does what Python does: one
addition after another in feature order, and libm's exp. A compiler may fuse x * y + z
into one FMA instruction (one rounding instead of two) when the target has one; the
pragmas below forbid it, for GCC and for Clang.
"""

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

from libc.math cimport exp


cdef double sigmoid_c(double z) noexcept nogil:
    cdef double e
    if z >= 0.0:
        return 1.0 / (1.0 + exp(-z))
    e = exp(z)
    return e / (1.0 + e)


def sigmoid(double z):
    return sigmoid_c(z)


cdef class Scorer:
    """The model's probability of fraud for each row of feature values."""

    cdef double[::1] _weights
    cdef double _intercept
    cdef Py_ssize_t _size

    def __init__(self, model):
        from array import array

        self._weights = array("d", [float(w) for w in model.coefficients])
        self._intercept = float(model.intercept)
        self._size = self._weights.shape[0]

    def score_many(self, rows):
        cdef Py_ssize_t i, j, n = len(rows)
        cdef double z
        cdef list scores = [None] * n
        cdef object row
        for i in range(n):
            row = rows[i]
            if len(row) != self._size:
                raise ValueError(f"row {i} has {len(row)} values, the model {self._size}")
            z = self._intercept
            for j in range(self._size):
                z = z + self._weights[j] * <double>row[j]
            if z != z:
                raise ValueError(f"row {i}: the linear term is not a number")
            scores[i] = sigmoid_c(z)
        return scores
