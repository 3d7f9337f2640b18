# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""RFC 6962 leaf hashes and root for one journal commit: every commit seals a block.

The reference, and why the hashing is what it is, is switch/stores/audit/merkle.py;
seal must give the same bytes (the tests compare them on random batches and on the
Certificate Transparency vectors). hashlib costs a context allocation and an
algorithm lookup per hash; here the SHA-256 algorithm is fetched once and one
context is reused for every leaf and node, and the tree is reduced in place.
"""

from libc.string cimport memcpy
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "openssl/evp.h":
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    EVP_MD_CTX* EVP_MD_CTX_new()
    EVP_MD* EVP_MD_fetch(void* libctx, const char* algorithm, const char* properties)
    int EVP_DigestInit_ex2(EVP_MD_CTX* ctx, const EVP_MD* md, const void* params)
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* d, size_t cnt)
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* md, unsigned int* s)

DEF HASH_SIZE = 32

cdef const EVP_MD* SHA256 = EVP_MD_fetch(NULL, b"SHA256", NULL)
cdef EVP_MD_CTX* CTX = EVP_MD_CTX_new()
if SHA256 == NULL or CTX == NULL:
    raise ImportError("OpenSSL's SHA-256 is not available")

cdef unsigned char LEAF_PREFIX = 0
cdef unsigned char NODE_PREFIX = 1


cdef int digest(unsigned char prefix, const unsigned char* data, size_t size,
                const unsigned char* more, size_t more_size, unsigned char* out) except -1:
    cdef unsigned int written
    if (EVP_DigestInit_ex2(CTX, SHA256, NULL) != 1
            or EVP_DigestUpdate(CTX, &prefix, 1) != 1
            or EVP_DigestUpdate(CTX, data, size) != 1
            or (more_size and EVP_DigestUpdate(CTX, more, more_size) != 1)
            or EVP_DigestFinal_ex(CTX, out, &written) != 1):
        raise RuntimeError("SHA-256 failed")
    return 0


def seal(payloads) -> tuple:
    """(the payloads' leaf hashes concatenated, their RFC 6962 root)."""
    cdef Py_ssize_t n = len(payloads), i, width
    cdef bytes blob = PyBytes_FromStringAndSize(NULL, n * HASH_SIZE)
    cdef unsigned char* leaves = <unsigned char*>PyBytes_AS_STRING(blob)
    cdef unsigned char* level
    cdef bytes payload
    cdef unsigned char root[HASH_SIZE]
    for i in range(n):
        payload = payloads[i]
        digest(LEAF_PREFIX, <const unsigned char*>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload),
               NULL, 0, leaves + i * HASH_SIZE)
    if n == 0:
        return blob, _empty_root()
    if n == 1:
        return blob, blob[:HASH_SIZE]
    # Pairing each level from the left and lifting an odd last node unchanged builds
    # exactly RFC 6962's tree, which splits at the largest power of two.
    level = <unsigned char*>malloc(n * HASH_SIZE)
    if level == NULL:
        raise MemoryError()
    try:
        memcpy(level, leaves, n * HASH_SIZE)
        width = n
        while width > 1:
            for i in range(width // 2):
                digest(NODE_PREFIX, level + 2 * i * HASH_SIZE, HASH_SIZE,
                       level + (2 * i + 1) * HASH_SIZE, HASH_SIZE, level + i * HASH_SIZE)
            if width & 1:
                memcpy(level + (width // 2) * HASH_SIZE, level + (width - 1) * HASH_SIZE, HASH_SIZE)
            width = (width + 1) // 2
        memcpy(root, level, HASH_SIZE)
    finally:
        free(level)
    return blob, PyBytes_FromStringAndSize(<char*>root, HASH_SIZE)


cdef bytes _empty_root():
    cdef unsigned char out[HASH_SIZE]
    cdef unsigned int written
    if (EVP_DigestInit_ex2(CTX, SHA256, NULL) != 1 or EVP_DigestFinal_ex(CTX, out, &written) != 1):
        raise RuntimeError("SHA-256 failed")
    return PyBytes_FromStringAndSize(<char*>out, HASH_SIZE)
