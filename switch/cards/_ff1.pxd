# The typed interface of _ff1.pyx (beside it): OpenSSL's EVP calls it uses and the FF1 class.

cdef extern from "openssl/evp.h":
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    ctypedef struct ENGINE:
        pass
    EVP_CIPHER_CTX* EVP_CIPHER_CTX_new()
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX* ctx)
    int EVP_CIPHER_CTX_set_padding(EVP_CIPHER_CTX* ctx, int pad)
    const EVP_CIPHER* EVP_aes_128_ecb()
    const EVP_CIPHER* EVP_aes_192_ecb()
    const EVP_CIPHER* EVP_aes_256_ecb()
    int EVP_EncryptInit_ex(EVP_CIPHER_CTX* ctx, const EVP_CIPHER* cipher, ENGINE* impl,
                           const unsigned char* key, const unsigned char* iv)
    int EVP_EncryptUpdate(EVP_CIPHER_CTX* ctx, unsigned char* out, int* outl,
                          const unsigned char* inp, int inl)

cdef extern from *:
    """
    typedef unsigned __int128 ff1_u128;
    """
    # gcc's 128-bit integer; Cython only needs to know it is an unsigned integer.
    ctypedef unsigned long long u128 "ff1_u128"

# Bounds shared with switch/cards/ff1.py (the tests check both enforce the same domain).
cdef enum:
    MAX_LEN = 256
    MAX_TWEAK_LEN = 256
    MIN_DOMAIN = 1000000
    ROUNDS = 10
    # The bytes of one round's PRF input that change (<= 15 constant bytes + [i] +
    # NUM(B) in b <= 83 bytes at MAX_LEN), and of S (d <= 88): fixed stack buffers.
    VARY_MAX = 128
    S_MAX = 128

# What one call needs in every round, computed once per call.
cdef struct Setup:
    int radix
    int n, u, v
    int b, d
    bint fast              # radix ** v <= 2 ** 120: the halves fit u128 with room for Horner
    u128 mod_u, mod_v      # radix ** u, radix ** v (fast path only)
    unsigned char chain[16]  # CBC-MAC state after P and the constant full blocks of Q
    unsigned char vary[VARY_MAX]  # the per-round blocks; starts with the constant leftover
    int vary_len           # head_len + 1 + b: a multiple of 16
    int head_len           # constant bytes of Q (tweak tail, zero padding) before [i]

cdef class FF1:
    cdef EVP_CIPHER_CTX* _ctx

    cdef int _ciph(self, const unsigned char* block, unsigned char* out) except -1
    cdef int _setup(self, Setup* s, bytes tweak, int n, int radix) except -1
    cdef int _round(self, Setup* s, int i, unsigned char* out_s) except -1
    cdef str _crypt(self, object tweak, object text, object radix, bint encrypt)
    cdef str _fast(self, Setup* s, const unsigned char* x, bint encrypt)
    cdef str _slow(self, Setup* s, const unsigned char* x, bint encrypt)
