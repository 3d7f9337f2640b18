# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The fee engine's arithmetic core, compiled: percent parts, clamps, revenue
splits and FX conversion in int64 minor units with __int128 intermediates.

The twin of switch/money/fees_core.py (same names, signatures and results; the scales
are documented there and in switch.money.fees). Every operand is non-negative, so C
division (cdivision) truncates exactly like Python's floor division. The GIL is
held throughout: a batch of a few hundred quotes takes microseconds, and the
plans' scratch buffers are shared by the callers of one plan.
"""

from array import array

from libc.stdint cimport INT64_MAX, int64_t

cdef extern from *:
    # Cython has no 128-bit type of its own; a product of two int64 values is
    # exact in it, so overflow is checked on results instead of guessed before.
    ctypedef long long int128_t "__int128"

cdef enum:
    HALF_EVEN_C = 0
    HALF_UP_C = 1
    DOWN_C = 2
    UP_C = 3

from switch.money.fees_core import check_fx, check_pricing, check_share_plan
from switch.domain.models import MoneyOverflow

HALF_EVEN = HALF_EVEN_C
HALF_UP = HALF_UP_C
DOWN = DOWN_C
UP = UP_C

PERCENT_SCALE = 10_000
PERCENT_DENOMINATOR = 1_000_000
RATE_SCALE = 100_000_000
MAX_RATE_UNITS = 10**15
MAX_EXPONENT_SHIFT = 4

cdef int64_t PERCENT_DENOMINATOR_C = 1_000_000
cdef int64_t RATE_SCALE_C = 100_000_000
cdef int64_t[9] POWERS_OF_TEN = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]


cdef int128_t round_quotient_c(
    int128_t quotient, int128_t remainder, int128_t divisor, int rounding
) noexcept nogil:
    if remainder == 0 or rounding == DOWN_C:
        return quotient
    if rounding == UP_C:
        return quotient + 1
    if 2 * remainder > divisor or (
        2 * remainder == divisor and (rounding == HALF_UP_C or quotient % 2 == 1)
    ):
        return quotient + 1
    return quotient


cdef int percent_of_c(int64_t amount, int64_t percent, int rounding, int64_t* out) noexcept nogil:
    cdef int128_t product = <int128_t>amount * percent
    cdef int128_t result = round_quotient_c(
        product / PERCENT_DENOMINATOR_C, product % PERCENT_DENOMINATOR_C, PERCENT_DENOMINATOR_C, rounding
    )
    if result > INT64_MAX:
        return 1
    out[0] = <int64_t>result
    return 0


cdef int convert_c(int64_t amount, int64_t rate_units, int64_t markup, int shift, int64_t* out) noexcept nogil:
    # amount x rate x (10^6 - markup) x 10^shift can reach ~10^44, past __int128;
    # splitting x = amount x rate by the divisor keeps every product under 10^35.
    cdef int64_t factor = (PERCENT_DENOMINATOR_C - markup) * POWERS_OF_TEN[shift if shift > 0 else 0]
    cdef int128_t divisor = <int128_t>RATE_SCALE_C * PERCENT_DENOMINATOR_C * POWERS_OF_TEN[-shift if shift < 0 else 0]
    cdef int128_t x = <int128_t>amount * rate_units
    cdef int128_t low = (x % divisor) * factor
    cdef int128_t quotient = (x / divisor) * factor + low / divisor
    cdef int128_t result = round_quotient_c(quotient, low % divisor, divisor, HALF_EVEN_C)
    if result > INT64_MAX:
        return 1
    out[0] = <int64_t>result
    return 0


cdef void largest_remainder_c(
    int64_t total, const int64_t* percents, int64_t* parts, int64_t* remainders, Py_ssize_t n
) noexcept nogil:
    cdef Py_ssize_t i, best
    cdef int128_t product
    cdef int64_t left = total
    for i in range(n):
        product = <int128_t>total * percents[i]
        parts[i] = <int64_t>(product / PERCENT_DENOMINATOR_C)
        remainders[i] = <int64_t>(product % PERCENT_DENOMINATOR_C)
        left -= parts[i]
    # left < n: hand out one unit at a time; a strict > keeps ties on the earlier entry.
    while left > 0:
        best = 0
        for i in range(1, n):
            if remainders[i] > remainders[best]:
                best = i
        parts[best] += 1
        remainders[best] = -1
        left -= 1


cdef inline void _raise_if(int failed, str what) except *:
    if failed:
        raise MoneyOverflow(f"{what} does not fit in int64 minor units")


cdef inline void _check_amount(int64_t amount) except *:
    if amount < 0:
        raise ValueError(f"amount must be >= 0, not {amount}")


cdef int64_t[::1] _int64s(values):
    return array("q", values)


def percent_of(int64_t amount, int64_t percent, int rounding):
    """round(amount x percent / 10^6) with the given rounding; MoneyOverflow past int64."""
    cdef int64_t out = 0
    _check_amount(amount)
    if not 0 <= percent <= 2 * PERCENT_DENOMINATOR_C or rounding not in (HALF_EVEN_C, HALF_UP_C, DOWN_C, UP_C):
        raise ValueError("percent must be in 0..2x10^6 and rounding one of 0..3")
    _raise_if(percent_of_c(amount, percent, rounding, &out), "the percent part")
    return out


def convert(int64_t amount, int64_t rate_units, int64_t markup, int shift):
    """amount x (rate_units / 10^8) x (1 - markup / 10^6) x 10^shift, rounded half-even."""
    cdef int64_t out = 0
    _check_amount(amount)
    check_fx(rate_units, markup, shift)
    _raise_if(convert_c(amount, rate_units, markup, shift, &out), "the converted amount")
    return out


def convert_many(amounts, int64_t rate_units, int64_t markup, int shift):
    """convert() over many amounts at one rate."""
    cdef int64_t out = 0
    cdef int64_t amount
    cdef list result = []
    check_fx(rate_units, markup, shift)
    for amount in amounts:
        _check_amount(amount)
        _raise_if(convert_c(amount, rate_units, markup, shift, &out), "the converted amount")
        result.append(out)
    return result


def largest_remainder(int64_t total, percents):
    """Splits total by percents summing to 10^6 by largest remainder (ties: earlier)."""
    cdef int64_t[::1] shares = _int64s(percents)
    cdef Py_ssize_t n = shares.shape[0]
    if n == 0 or sum(percents) != PERCENT_DENOMINATOR or min(percents) < 0:
        raise ValueError("percents must be non-negative and sum to 10^6")
    _check_amount(total)
    cdef int64_t[::1] parts = _int64s([0] * n)
    cdef int64_t[::1] remainders = _int64s([0] * n)
    largest_remainder_c(total, &shares[0], &parts[0], &remainders[0], n)
    return list(parts)


cdef class SharePlan:
    """A revenue-share tree flattened in depth-first order (see switch.money.fees_core.SharePlan)."""

    cdef readonly Py_ssize_t size
    cdef int64_t[::1] _percent        # per node, of what its parent receives
    cdef int64_t[::1] _group_node     # per group: the node whose share it splits (-1: the fee)
    cdef int64_t[::1] _group_start    # per group, plus one: where its members start in _members
    cdef int64_t[::1] _members        # nodes by group; -1: the kept part of the group's node
    cdef int64_t[::1] _entry_percent  # the members' percents, kept parts included
    cdef int64_t[::1] _received       # scratch: what each node receives
    cdef int64_t[::1] _parts          # scratch, per member
    cdef int64_t[::1] _remainders     # scratch, per member

    def __init__(self, parents, percents):
        check_share_plan(parents, percents)
        self.size = len(parents)
        self._percent = _int64s(percents)
        children = [[] for _ in parents]
        for node, parent in enumerate(parents):
            if parent != -1:
                children[parent].append(node)
        # Group 0 splits the fee among the top level; then each parent, in order,
        # splits what it receives between its kept part (member -1) and its children.
        group_node, group_start, members, entry_percent = [-1], [0], [], []
        for node, parent in enumerate(parents):
            if parent == -1:
                members.append(node)
                entry_percent.append(percents[node])
        for node, kids in enumerate(children):
            if kids:
                group_node.append(node)
                group_start.append(len(members))
                members.extend([-1, *kids])
                entry_percent.extend([PERCENT_DENOMINATOR - sum(percents[k] for k in kids)])
                entry_percent.extend(percents[k] for k in kids)
        group_start.append(len(members))
        self._group_node = _int64s(group_node)
        self._group_start = _int64s(group_start)
        self._members = _int64s(members)
        self._entry_percent = _int64s(entry_percent)
        self._received = _int64s([0] * self.size)
        self._parts = _int64s([0] * len(members))
        self._remainders = _int64s([0] * len(members))

    cdef tuple split_c(self, int64_t total):
        cdef Py_ssize_t g, j, node, start, end
        cdef int64_t amount
        result = [0] * self.size
        for g in range(self._group_node.shape[0]):
            node = self._group_node[g]
            amount = total if node == -1 else self._received[node]
            start = self._group_start[g]
            end = self._group_start[g + 1]
            largest_remainder_c(
                amount, &self._entry_percent[start], &self._parts[start], &self._remainders[start], end - start
            )
            for j in range(start, end):
                if self._members[j] == -1:
                    result[node] = self._parts[j]
                else:
                    self._received[self._members[j]] = self._parts[j]
                    result[self._members[j]] = self._parts[j]
        return tuple(result)

    def split(self, int64_t total):
        """Per node in depth-first order: what a leaf receives or a parent keeps."""
        _check_amount(total)
        return list(self.split_c(total))


cdef class Pricing:
    """One schedule's fee rule in scaled integers (see switch.money.fees_core.Pricing)."""

    cdef int64_t[::1] _up_to
    cdef int64_t[::1] _percent
    cdef int64_t[::1] _fixed
    cdef int64_t _cross_border
    cdef int64_t _min
    cdef int64_t _max
    cdef int _rounding
    cdef SharePlan _plan

    def __init__(self, up_to, percents, fixed, *, int64_t cross_border_percent, int64_t min_fee, int64_t max_fee,
                 int rounding, SharePlan plan=None):
        check_pricing(up_to, percents, fixed, cross_border_percent=cross_border_percent, min_fee=min_fee,
                      max_fee=max_fee, rounding=rounding)
        self._up_to = _int64s(up_to)
        self._percent = _int64s(percents)
        self._fixed = _int64s(fixed)
        self._cross_border = cross_border_percent
        self._min = min_fee
        self._max = max_fee
        self._rounding = rounding
        self._plan = plan

    cdef int fee_c(self, int64_t amount, bint cross_border, int64_t* out) noexcept nogil:
        cdef Py_ssize_t tier = 0
        cdef int64_t part = 0
        cdef int128_t total
        while amount > self._up_to[tier]:  # the last tier's up_to is INT64_MAX
            tier += 1
        if percent_of_c(amount, self._percent[tier] + (self._cross_border if cross_border else 0),
                        self._rounding, &part):
            return 1
        total = <int128_t>part + self._fixed[tier]
        if total > INT64_MAX:
            return 1
        if total < self._min:
            total = self._min
        if total > self._max:
            total = self._max
        out[0] = <int64_t>total
        return 0

    cdef tuple _quote(self, int64_t amount, bint cross_border):
        cdef int64_t fee = 0
        _check_amount(amount)
        _raise_if(self.fee_c(amount, cross_border, &fee), "the fee")
        return fee, (() if self._plan is None else self._plan.split_c(fee))

    def fee(self, int64_t amount, bint cross_border):
        """clamp(round(amount x percent / 10^6) + fixed, min, max); MoneyOverflow past int64."""
        cdef int64_t fee = 0
        _check_amount(amount)
        _raise_if(self.fee_c(amount, cross_border, &fee), "the fee")
        return fee

    def quote(self, int64_t amount, bint cross_border):
        """The fee and its split in the plan's order (empty without a plan)."""
        return self._quote(amount, cross_border)


def quote_many(pricings, amounts, cross_border):
    """Pricing.quote over a batch: item i is priced by pricings[i]."""
    cdef Py_ssize_t i, n = len(pricings)
    if len(amounts) != n or len(cross_border) != n:
        raise ValueError("pricings, amounts and cross_border must be of one length")
    cdef list result = [None] * n
    for i in range(n):
        result[i] = (<Pricing?>pricings[i])._quote(amounts[i], cross_border[i])
    return result
