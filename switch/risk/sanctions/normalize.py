"""Names made comparable before screening: case-folded, transliterated to ASCII, punctuation
stripped, "LAST, First" reordered, and legal suffixes, honorifics and stop-words dropped.

The lists are small and explicit on purpose (in the manner of moov-io/watchman's stop-word
removal): a word is dropped only where it says nothing about who the party is. A name made
only of such words keeps them, so that it still has something to match on.
"""

from __future__ import annotations

import re

from anyascii import anyascii

__all__ = ["HONORIFICS", "LEGAL_SUFFIXES", "STOP_WORDS", "key", "tokens"]

# Legal forms, wherever they stand (Russian forms such as "OOO" come first).
LEGAL_SUFFIXES = frozenset(
    {
        "llc", "ltd", "limited", "inc", "incorporated", "corp", "corporation", "co", "company",
        "gmbh", "sa", "plc", "ag", "bv", "nv", "jsc", "ojsc", "pjsc", "cjsc", "llp", "ooo", "zao",
        "oao", "trading", "sarl", "srl", "spa",
    }
)  # fmt: skip
# Legal forms written as separate letters once punctuation is gone ("S.A." -> "s a").
LEGAL_SEQUENCES = (("s", "a", "r", "l"), ("s", "p", "a"), ("s", "a"), ("b", "v"), ("n", "v"))
HONORIFICS = frozenset(
    {
        "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "sheikh", "shaykh", "haji", "hajji",
        "gen", "general", "col", "colonel", "capt", "captain", "maj", "major", "lt", "sgt", "rev",
    }
)  # fmt: skip
# Articles and name particles that transliterations add or leave out at will.
STOP_WORDS = frozenset(
    {"the", "of", "and", "for", "de", "del", "der", "van", "von", "da", "al", "el", "bin", "ibn", "bint"}
)
_DROPPED = LEGAL_SUFFIXES | HONORIFICS | STOP_WORDS

_APOSTROPHES = re.compile(r"['`\u2018\u2019\u02bc\u02bb\u02bf\u02be]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_LAST_FIRST = re.compile(r"^([^,]*\w[^,]*),([^,]*\w[^,]*)$")


def _words(name: str) -> list[str]:
    text = _APOSTROPHES.sub("", anyascii(name)).casefold()
    text = _APOSTROPHES.sub("", text)  # anyascii writes ayn and hamza as apostrophes
    reordered = _LAST_FIRST.match(text)
    if reordered:  # "LAST, First Middle" as OFAC writes individuals
        text = f"{reordered.group(2)} {reordered.group(1)}"
    return _NOT_WORD.sub(" ", text).split()


def _drop_sequences(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        for sequence in LEGAL_SEQUENCES:
            if tuple(words[i : i + len(sequence)]) == sequence:
                i += len(sequence)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def tokens(name: str) -> tuple[str, ...]:
    """The name's words in order, lower-case ASCII, without legal forms, titles or stop-words."""
    words = _words(name)
    kept = [word for word in _drop_sequences(words) if word not in _DROPPED]
    return tuple(kept) if kept else tuple(words)


def key(name: str) -> str:
    """The normalised name as one string: the cache key for a name."""
    return " ".join(tokens(name))
