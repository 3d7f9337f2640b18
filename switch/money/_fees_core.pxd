# The typed interface of the compiled fee core (_fees_core.pyx, beside it): integer helpers
# that return 0 on success and 1 when a result leaves int64, so they run without
# the GIL; the Python-level wrappers turn 1 into MoneyOverflow. Arguments are
# non-negative; percents are scaled by 10^4 (parts per 10^6 of the amount), rates
# by 10^8, rounding is 0 half-even, 1 half-up, 2 down, 3 up.
#
# Cython reads this file when it compiles the .pyx, since it sits beside it under
# the module's own name. It declares only the C functions, the module's C-level
# interface; the cdef classes declare their fields in the .pyx, where all their code is.

from libc.stdint cimport int64_t

cdef int percent_of_c(int64_t amount, int64_t percent, int rounding, int64_t* out) noexcept nogil
cdef int convert_c(int64_t amount, int64_t rate_units, int64_t markup, int shift, int64_t* out) noexcept nogil
cdef void largest_remainder_c(
    int64_t total, const int64_t* percents, int64_t* parts, int64_t* remainders, Py_ssize_t n
) noexcept nogil
