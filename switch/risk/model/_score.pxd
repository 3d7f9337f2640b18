# The typed interface of the compiled scorer (_score.pyx, beside it): the sigmoid, safe for
# any z (exp only ever sees z <= 0). The Scorer class declares its fields in the .pyx.

cdef double sigmoid_c(double z) noexcept nogil
