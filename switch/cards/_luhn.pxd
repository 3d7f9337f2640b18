cdef bint luhn_valid_c(const unsigned char[:] digits) noexcept nogil
