# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""RFC 6962 leaf hashes and root for one journal commit: every commit seals a block.

The reference, and why the hashing is what it is, is switch/stores/audit/merkle.py
(and the leaf payloads, switch/stores/audit/chain.py); seal and seal_rows must give
the same bytes (the tests compare them on random batches and on the Certificate
Transparency vectors). What makes it fast: OpenSSL's SHA-256 on a context on the
stack (no allocation, no algorithm lookup per hash, as hashlib and EVP have), each
leaf hashed from its parts without concatenating them, the rows' payloads and keys
built in C, and the tree reduced in place.
"""

from libc.string cimport memcpy
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF

import orjson

cdef extern from *:
    """
    #define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_Init & co: no provider lookup per hash */
    #include <openssl/sha.h>
    """
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX* c) nogil
    int SHA256_Update(SHA256_CTX* c, const void* data, size_t size) nogil
    int SHA256_Final(unsigned char* md, SHA256_CTX* c) nogil

DEF HASH_SIZE = 32

cdef object _dumps = orjson.dumps
cdef unsigned char LEAF = 0
cdef unsigned char NODE = 1
cdef unsigned char TRANSACTION = b"t"[0]
cdef unsigned char ENTRY = b"e"[0]


cdef inline void leaf_of(const unsigned char* tag, size_t tag_size, bytes first, bytes second,
                         unsigned char* out) noexcept:
    """SHA-256(0x00 || tag || first || second)."""
    cdef SHA256_CTX c
    SHA256_Init(&c)
    SHA256_Update(&c, &LEAF, 1)
    SHA256_Update(&c, tag, tag_size)
    SHA256_Update(&c, PyBytes_AS_STRING(first), PyBytes_GET_SIZE(first))
    if second is not None:
        SHA256_Update(&c, PyBytes_AS_STRING(second), PyBytes_GET_SIZE(second))
    SHA256_Final(out, &c)


cdef bytes root_of(unsigned char* leaves, Py_ssize_t n):
    """RFC 6962's root of n leaf hashes: pairing each level from the left and lifting an
    odd last node unchanged builds exactly its tree (which splits at the largest power
    of two below n)."""
    cdef unsigned char* level
    cdef unsigned char out[HASH_SIZE]
    cdef Py_ssize_t width, i
    cdef SHA256_CTX c
    if n == 0:
        SHA256_Init(&c)
        SHA256_Final(out, &c)
        return PyBytes_FromStringAndSize(<char*>out, HASH_SIZE)
    level = <unsigned char*>malloc(n * HASH_SIZE)
    if level == NULL:
        raise MemoryError()
    try:
        memcpy(level, leaves, n * HASH_SIZE)
        width = n
        while width > 1:
            for i in range(width // 2):
                SHA256_Init(&c)
                SHA256_Update(&c, &NODE, 1)
                SHA256_Update(&c, level + 2 * i * HASH_SIZE, 2 * HASH_SIZE)
                SHA256_Final(level + i * HASH_SIZE, &c)
            if width & 1:
                memcpy(level + (width // 2) * HASH_SIZE, level + (width - 1) * HASH_SIZE, HASH_SIZE)
            width = (width + 1) // 2
        return PyBytes_FromStringAndSize(<char*>level, HASH_SIZE)
    finally:
        free(level)


def seal(payloads) -> tuple:
    """(the payloads' leaf hashes concatenated, their RFC 6962 root)."""
    cdef Py_ssize_t n = len(payloads), i
    cdef bytes blob = PyBytes_FromStringAndSize(NULL, n * HASH_SIZE)
    cdef unsigned char* leaves = <unsigned char*>PyBytes_AS_STRING(blob)
    for i in range(n):
        leaf_of(NULL, 0, payloads[i], None, leaves + i * HASH_SIZE)
    return blob, root_of(leaves, n)


cdef list _list(tuple items):
    cdef Py_ssize_t i, n = len(items)
    cdef list made = PyList_New(n)
    for i in range(n):
        Py_INCREF(items[i])
        PyList_SET_ITEM(made, i, items[i])
    return made


def seal_rows(list transactions, list entries, list payloads) -> tuple:
    """(leaf hashes, root, keys) of transaction rows, entry rows and other payloads, in
    that order: switch.stores.audit.chain's transaction_payload, entry_payload and keys."""
    cdef Py_ssize_t nt = len(transactions), ne = len(entries), n = nt + ne + len(payloads), i, k = 0
    cdef bytes blob = PyBytes_FromStringAndSize(NULL, n * HASH_SIZE)
    cdef unsigned char* leaves = <unsigned char*>PyBytes_AS_STRING(blob)
    cdef list keys = PyList_New(nt + ne)
    cdef tuple row
    cdef list fields
    for i in range(nt):
        row = transactions[i]
        leaf_of(&TRANSACTION, 1, _dumps(row), None, leaves + k * HASH_SIZE)
        key = ["t", row[0], row[17]]
        Py_INCREF(key)
        PyList_SET_ITEM(keys, k, key)
        k += 1
    for i in range(ne):
        row = entries[i]
        fields = _list(row)
        del fields[9]  # the response, hashed as it is after the rest
        if len(fields) > 13 and fields[13] == "":
            del fields[13]  # an empty alert, then an empty decision: see leaves.entry_payload
        if len(fields) > 12 and fields[12] == "":
            del fields[12]
        leaf_of(&ENTRY, 1, _dumps(fields), row[9], leaves + k * HASH_SIZE)
        key = ["e", row[1], row[2], row[11], row[12]]
        Py_INCREF(key)
        PyList_SET_ITEM(keys, k, key)
        k += 1
    for i in range(len(payloads)):
        leaf_of(NULL, 0, payloads[i], None, leaves + k * HASH_SIZE)
        k += 1
    return blob, root_of(leaves, n), keys
