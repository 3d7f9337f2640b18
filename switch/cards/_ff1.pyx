# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""FF1 (NIST SP 800-38G) over one OpenSSL AES-ECB context: the tokenizer's hot path.

The pure-Python twin, its domain rules and the reasons for them are in
switch/cards/ff1.py; this module must give the same answers and raise on the same
inputs (the tests compare them on thousands of random vectors).

How it is fast: the AES context is created once per key; P and the constant
head of Q (tweak and zero padding) are CBC-MACed once per call, so a round
encrypts only the one or two blocks that hold [i] || NUM(B); while radix ** v
fits in 2 ** 120 the halves A and B stay u128 integers (no numeral strings
between rounds) and y is reduced mod radix ** m by Horner's rule without
overflow. Longer strings take the same path with Python ints for the arithmetic.
"""

from libc.string cimport memcpy
from libc.stdint cimport uint64_t
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef const char* ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyz"
# Horner's step (acc << 8) | byte must not overflow: acc < modulus <= 2 ** 120.
cdef u128 FAST_LIMIT = (<u128>1) << 120


cdef inline int bit_length(u128 x) noexcept nogil:
    cdef int n = 0
    while x:
        x >>= 1
        n += 1
    return n


cdef inline void put_be(u128 x, unsigned char* out, int nbytes) noexcept nogil:
    cdef int k
    for k in range(nbytes - 1, -1, -1):
        out[k] = <unsigned char>(x & 0xFF)
        x >>= 8


cdef inline u128 num_mod(const unsigned char* s, int d, u128 m) noexcept nogil:
    """NUM(S[0:d]) mod m, for m <= 2 ** 120."""
    cdef u128 acc = 0
    cdef int k, first = d if d < 16 else 16
    for k in range(first):
        acc = (acc << 8) | s[k]
    if (acc >> 64) == 0 and (m >> 64) == 0:
        acc = <uint64_t>acc % <uint64_t>m  # the common case (d <= 8): a 64-bit division
    else:
        acc %= m
    for k in range(16, d):
        acc = ((acc << 8) | s[k]) % m
    return acc


cdef inline void put_digits(u128 x, int radix, char* out, int m) noexcept nogil:
    cdef int k = m - 1
    cdef uint64_t w
    while k >= 0 and (x >> 64) != 0:
        out[k] = ALPHABET[<int>(x % <unsigned int>radix)]
        x = x // <unsigned int>radix
        k -= 1
    w = <uint64_t>x
    while k >= 0:
        out[k] = ALPHABET[w % <unsigned int>radix]
        w = w // <unsigned int>radix
        k -= 1


cdef class FF1:
    """FF1 with one AES key (16, 24 or 32 bytes); encrypt/decrypt(tweak, text, radix=10)."""

    def __cinit__(self, key):
        if not isinstance(key, bytes):
            raise TypeError("the FF1 key must be bytes")
        cdef const EVP_CIPHER* cipher
        cdef Py_ssize_t size = len(<bytes>key)
        if size == 16:
            cipher = EVP_aes_128_ecb()
        elif size == 24:
            cipher = EVP_aes_192_ecb()
        elif size == 32:
            cipher = EVP_aes_256_ecb()
        else:
            raise ValueError("the FF1 key must be 16, 24 or 32 bytes")
        self._ctx = EVP_CIPHER_CTX_new()
        if self._ctx == NULL:
            raise MemoryError()
        if EVP_EncryptInit_ex(self._ctx, cipher, NULL, <const unsigned char*><bytes>key, NULL) != 1:
            raise RuntimeError("OpenSSL could not set up AES")
        EVP_CIPHER_CTX_set_padding(self._ctx, 0)  # whole blocks only: no padding block, ever

    def __dealloc__(self):
        if self._ctx != NULL:
            EVP_CIPHER_CTX_free(self._ctx)
            self._ctx = NULL

    def encrypt(self, tweak, text, radix=10):
        """FF1.Encrypt(K, T, X) over the alphabet "0-9a-z"[:radix]."""
        return self._crypt(tweak, text, radix, True)

    def decrypt(self, tweak, text, radix=10):
        """FF1.Decrypt(K, T, Y): the inverse of encrypt."""
        return self._crypt(tweak, text, radix, False)

    cdef int _ciph(self, const unsigned char* block, unsigned char* out) except -1:
        cdef int outl = 0
        if EVP_EncryptUpdate(self._ctx, out, &outl, block, 16) != 1 or outl != 16:
            raise RuntimeError("OpenSSL AES failed")
        return 0

    cdef str _crypt(self, object tweak, object text, object radix, bint encrypt):
        cdef str chars
        cdef Py_ssize_t n, k
        cdef int r, digit, code
        cdef u128 domain = 1
        cdef unsigned char numerals[MAX_LEN]
        cdef Py_UCS4 ch
        cdef Setup s
        # Same checks, in the same order, with the same messages as switch/cards/ff1.py.
        if not isinstance(radix, int):
            raise TypeError("the radix must be an int")
        if not isinstance(tweak, bytes):
            raise TypeError("the tweak must be bytes")
        if not isinstance(text, str):
            raise TypeError("the text must be a str")
        if not 2 <= radix <= 36:
            raise ValueError("the radix must be an integer from 2 to 36")
        if len(<bytes>tweak) > MAX_TWEAK_LEN:
            raise ValueError(f"the tweak must be at most {MAX_TWEAK_LEN} bytes")
        chars = <str>text
        n = len(chars)
        if not 2 <= n <= MAX_LEN:
            raise ValueError(f"the text must be 2 to {MAX_LEN} characters long")
        r = radix
        k = 0
        while k < n and domain < MIN_DOMAIN:
            domain *= r
            k += 1
        if domain < MIN_DOMAIN:
            raise ValueError(f"radix ** length must be at least {MIN_DOMAIN:,} (the FF1 minimum domain)")

        for k in range(n):
            ch = chars[k]
            code = <int>ch
            if 48 <= code <= 57:
                digit = code - 48
            elif 97 <= code <= 122:
                digit = code - 87
            else:
                digit = 255
            if digit >= r:
                raise ValueError(f"the text has characters outside the radix-{r} alphabet")
            numerals[k] = <unsigned char>digit

        self._setup(&s, <bytes>tweak, <int>n, r)
        if s.fast:
            return self._fast(&s, numerals, encrypt)
        return self._slow(&s, numerals, encrypt)

    cdef int _setup(self, Setup* s, bytes tweak, int n, int radix) except -1:
        cdef int t = <int>len(tweak), k, j, pos, const_len, full
        cdef const unsigned char* tw = tweak
        cdef unsigned char block[16]
        cdef u128 p = 1
        s.radix = radix
        s.n = n
        s.u = n // 2
        s.v = n - s.u
        s.fast = True
        for k in range(s.v):
            if p > FAST_LIMIT // <unsigned int>radix:
                s.fast = False
                break
            p *= <unsigned int>radix
        if s.fast:
            s.mod_v = p
            s.mod_u = p if s.u == s.v else p // <unsigned int>radix
            s.b = (bit_length(p - 1) + 7) // 8
        else:
            s.b = (((<object>radix) ** s.v - 1).bit_length() + 7) // 8
        s.d = 4 * ((s.b + 3) // 4) + 4
        if s.b + 16 > VARY_MAX or s.d > S_MAX:
            raise AssertionError("FF1 buffers too small for this length")

        # P = [1, 2, 1] [radix]^3 [10] [u mod 256] [n]^4 [t]^4; Y1 = CIPH(P).
        block[0] = 1
        block[1] = 2
        block[2] = 1
        block[3] = (radix >> 16) & 0xFF
        block[4] = (radix >> 8) & 0xFF
        block[5] = radix & 0xFF
        block[6] = 10
        block[7] = s.u & 0xFF
        for k in range(4):
            block[8 + k] = (n >> (24 - 8 * k)) & 0xFF
            block[12 + k] = (t >> (24 - 8 * k)) & 0xFF
        self._ciph(block, s.chain)

        # Q = T || [0]^((-t-b-1) mod 16) || [i] || [NUM(B)]^b: the part before [i]
        # is the same in every round, so its whole blocks are chained here, once.
        const_len = t + (16 - (t + s.b + 1) % 16) % 16
        full = const_len // 16
        for j in range(full):
            for k in range(16):
                pos = 16 * j + k
                block[k] = s.chain[k] ^ (tw[pos] if pos < t else 0)
            self._ciph(block, s.chain)
        s.head_len = const_len - 16 * full
        for k in range(s.head_len):
            pos = 16 * full + k
            s.vary[k] = tw[pos] if pos < t else 0
        s.vary_len = s.head_len + 1 + s.b
        return 0

    cdef int _round(self, Setup* s, int i, unsigned char* out) except -1:
        """S for round i, into out[0:d]; the caller has put NUM(B) into s.vary."""
        cdef unsigned char y[16]
        cdef unsigned char block[16]
        cdef int j, k
        memcpy(y, s.chain, 16)
        s.vary[s.head_len] = <unsigned char>i
        for j in range(0, s.vary_len, 16):
            for k in range(16):
                block[k] = y[k] ^ s.vary[j + k]
            self._ciph(block, y)
        memcpy(out, y, 16)
        # S = R || CIPH(R xor [1]^16) || CIPH(R xor [2]^16) ...; j < 256, so only
        # the last byte of [j]^16 is non-zero.
        for j in range(1, (s.d + 15) // 16):
            memcpy(block, y, 16)
            block[15] ^= <unsigned char>j
            self._ciph(block, out + 16 * j)
        return 0

    cdef str _fast(self, Setup* s, const unsigned char* x, bint encrypt):
        cdef u128 a = 0, b = 0, c, y, m
        cdef unsigned char sbuf[S_MAX]
        cdef char out[MAX_LEN]
        cdef unsigned char* num_b = s.vary + s.head_len + 1
        cdef int k, i
        for k in range(s.u):
            a = a * <unsigned int>s.radix + x[k]
        for k in range(s.u, s.n):
            b = b * <unsigned int>s.radix + x[k]
        if encrypt:
            for i in range(ROUNDS):
                put_be(b, num_b, s.b)
                self._round(s, i, sbuf)
                m = s.mod_u if i % 2 == 0 else s.mod_v
                c = a + num_mod(sbuf, s.d, m)  # both < m: one subtraction reduces it
                if c >= m:
                    c -= m
                a = b
                b = c
        else:
            for i in range(ROUNDS - 1, -1, -1):
                put_be(a, num_b, s.b)
                self._round(s, i, sbuf)
                m = s.mod_u if i % 2 == 0 else s.mod_v
                y = num_mod(sbuf, s.d, m)
                c = b - y if b >= y else b + (m - y)
                b = a
                a = c
        put_digits(a, s.radix, out, s.u)
        put_digits(b, s.radix, out + s.u, s.v)
        return PyUnicode_DecodeASCII(out, s.n, NULL)

    cdef str _slow(self, Setup* s, const unsigned char* x, bint encrypt):
        cdef unsigned char sbuf[S_MAX]
        cdef char out[MAX_LEN]
        cdef unsigned char* num_b = s.vary + s.head_len + 1
        cdef bytes raw
        cdef int k, i
        cdef object radix = s.radix, a = 0, b = 0, c, y, m
        cdef object mod_u = radix ** s.u, mod_v = radix ** s.v
        for k in range(s.u):
            a = a * radix + x[k]
        for k in range(s.u, s.n):
            b = b * radix + x[k]
        for i in (range(ROUNDS) if encrypt else range(ROUNDS - 1, -1, -1)):
            raw = (b if encrypt else a).to_bytes(s.b, "big")
            memcpy(num_b, <const unsigned char*>raw, s.b)
            self._round(s, i, sbuf)
            y = int.from_bytes((<char*>sbuf)[:s.d], "big")
            m = mod_u if i % 2 == 0 else mod_v
            if encrypt:
                a, b = b, (a + y) % m
            else:
                a, b = (b - y) % m, a
        for k in range(s.u - 1, -1, -1):
            a, c = divmod(a, radix)
            out[k] = ALPHABET[<int>c]
        for k in range(s.n - 1, s.u - 1, -1):
            b, c = divmod(b, radix)
            out[k] = ALPHABET[<int>c]
        return PyUnicode_DecodeASCII(out, s.n, NULL)
