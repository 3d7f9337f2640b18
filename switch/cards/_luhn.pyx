# cython: language_level=3, boundscheck=False, wraparound=False
"""Card-number checks on the hot path: every card authorization runs luhn_valid."""

cdef bint luhn_valid_c(const unsigned char[:] digits) noexcept nogil:
    cdef Py_ssize_t i, n = digits.shape[0]
    cdef int total = 0, d
    cdef bint double_it = False
    if n == 0:
        return False
    for i in range(n - 1, -1, -1):
        d = digits[i] - 48
        if d < 0 or d > 9:
            return False
        if double_it:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double_it = not double_it
    return total % 10 == 0


def luhn_valid(str number) -> bool:
    """True when number is all ASCII digits and passes the Luhn (mod 10) check."""
    cdef bytes raw
    try:
        raw = number.encode("ascii")
    except UnicodeEncodeError:
        return False
    return luhn_valid_c(raw)
