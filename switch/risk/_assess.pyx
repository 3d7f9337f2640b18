# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The risk step's arithmetic for a batch, compiled: the twin of switch.risk.assess.PureKernel.

From each payment's activity as the claim answered it (little-endian doubles, read here
byte by byte so the host's byte order does not matter), its model row (model_row's
transforms), its score (the scorer's sum and sigmoid) and its AML alert mask
(AmlRules.masks' comparisons), without an Activity or a row list per payment: only
the journaled row, rounded as switch.risk.assess.pure_rounded_many rounds it, is
built. Every float equals the twin's bit for bit: the same operations in the same
order, libm's log1p and exp, Python's min and max written out as the comparisons they
make, and no fused multiply-add.
"""

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

from libc.math cimport log1p, rint, trunc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from switch.risk.model._score cimport sigmoid_c

cdef enum:
    ROW = 10  # the model's features (switch.risk.model.features.FEATURES)
    PAYER = 10  # doubles of a payer's answer (switch.risk.activity.parse_activity)


cdef inline double _double(const unsigned char* at) noexcept nogil:
    cdef uint64_t bits = 0
    cdef int k
    cdef double value
    for k in range(7, -1, -1):
        bits = (bits << 8) | at[k]
    memcpy(&value, &bits, 8)
    return value


cdef inline double _rounded(double v) noexcept nogil:
    v = v * 1e6
    return ((rint(v) + 0.0) if v - v == 0.0 else v) / 1e6


cdef class Kernel:
    """judge_many for one model (None: no score) and one set of AML rules (None: no alerts)."""

    cdef bint _scores, _aml
    cdef double _weights[ROW]
    cdef double _intercept, _min_mean, _ratio_cap, _age_cap, _day
    cdef long _enabled
    cdef double _near_low, _near_high, _near_before, _destinations, _sources
    cdef double _spike_ratio, _spike_history, _spike_usd, _idle, _dormant_usd

    def __init__(self, model, aml):
        from switch.risk.model import features

        self._scores = model is not None
        if self._scores:
            if len(model.coefficients) != ROW:
                raise ValueError(f"the model has {len(model.coefficients)} weights, the features {ROW}")
            for j in range(ROW):
                self._weights[j] = float(model.coefficients[j])
            self._intercept = float(model.intercept)
        self._min_mean, self._ratio_cap = features.MIN_MEAN_USD, features.AMOUNT_RATIO_CAP
        self._age_cap, self._day = features.AGE_CAP_DAYS, features.DAY
        self._aml = aml is not None
        if self._aml:
            (self._enabled, self._near_low, self._near_high, self._near_before, self._destinations,
             self._sources, self._spike_ratio, self._spike_history, self._spike_usd, self._idle,
             self._dormant_usd) = aml.numbers

    def judge_many(self, payments):
        """(each payment's journaled row, its score, its AML mask): empty lists for what this
        kernel does not judge."""
        cdef Py_ssize_t i, j, n = len(payments)
        cdef double a[PAYER]
        cdef double row[ROW]
        cdef double amount, sources, mean, ratio, age, z
        cdef const unsigned char* at
        cdef bytes payer, destination
        cdef list rows = [None] * n if self._scores else []
        cdef list scores = [None] * n if self._scores else []
        cdef list masks = [None] * n if self._aml else []
        cdef list journaled
        cdef long mask
        for i in range(n):
            payment = payments[i]
            payer = payment.payer
            if len(payer) != 8 * PAYER:
                raise ValueError(f"payment {i}: a payer's activity is {8 * PAYER} bytes, not {len(payer)}")
            at = payer
            for j in range(PAYER):
                a[j] = _double(at + 8 * j)
            destination = payment.destination
            sources = 0.0
            if destination is not None:
                if len(destination) != 8:
                    raise ValueError(f"payment {i}: a destination's activity is 8 bytes, not {len(destination)}")
                sources = trunc(_double(destination))
            amount = payment.amount_usd
            # a: first, count_1h, declines_1h, cents_24h, near_24h, destinations, count_30d,
            # cents_30d, age, idle (switch.risk.activity.parse_activity)
            if self._scores:
                ratio = 1.0
                if a[6] > 0:
                    mean = (a[7] / 100) / a[6]
                    mean = self._min_mean if self._min_mean > mean else mean
                    ratio = amount / mean
                    ratio = self._ratio_cap if self._ratio_cap < ratio else ratio
                age = a[8] / self._day
                age = self._age_cap if self._age_cap < age else age
                row[0] = log1p(amount)
                row[1] = 1.0 if payment.cross_border else 0.0
                row[2] = 1.0 if payment.card else 0.0
                row[3] = a[1]
                row[4] = a[2]
                row[5] = log1p(a[3] / 100)
                row[6] = trunc(a[5])
                row[7] = sources
                row[8] = log1p(age)
                row[9] = ratio
                z = self._intercept
                for j in range(ROW):
                    z = z + self._weights[j] * row[j]
                if z != z:
                    raise ValueError(f"row {i}: the linear term is not a number")
                scores[i] = sigmoid_c(z)
                journaled = [None] * ROW
                for j in range(ROW):
                    journaled[j] = _rounded(row[j])
                rows[i] = journaled
            if self._aml:
                mask = 0
                if (self._enabled & 1 and self._near_low <= amount < self._near_high
                        and a[4] >= self._near_before):
                    mask = 1
                if self._enabled & 2 and trunc(a[5]) >= self._destinations:
                    mask |= 2
                if self._enabled & 4 and sources >= self._sources:
                    mask |= 4
                if (self._enabled & 8 and amount >= self._spike_usd and a[6] >= self._spike_history
                        and amount >= self._spike_ratio * ((a[7] / 100) / a[6])):
                    mask |= 8
                if self._enabled & 16 and amount >= self._dormant_usd and not a[0] == 1.0 and a[9] >= self._idle:
                    mask |= 16
                masks[i] = mask
        return rows, scores, masks
