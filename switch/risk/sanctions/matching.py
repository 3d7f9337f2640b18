"""Screening a name against a sanctions list: token-wise Jaro-Winkler, in the manner of
moov-io/watchman, behind an index that finds the same best match as comparing every name.

Scoring a query against one listed name:

* both are normalised (``normalize.tokens``) and each token is folded for spelling
  (``fold``: doubled letters, ``x``/``ks``, ``ph``/``f``, ``ou``/``u``...), so that the common
  transliteration variants differ by a letter or two;
* a query token and a listed token pair only if they are within a small edit distance
  (``budget``: none up to 2 letters, one up to 6, two beyond) and their Jaro-Winkler
  similarity is at least ``PAIR_FLOOR``; the pair then scores that similarity;
* pairs are taken greedily, best first, each token used at most once on either side
  ("JOHN JOHN" is not "JOHN SMITH");
* the score is the pairs' similarities weighted by the two tokens' lengths, over the
  lengths of everything: query tokens left unpaired count in full, and so do unpaired
  listed tokens unless at least two pairs matched, when they count
  ``UNMATCHED_LISTED_WEIGHT`` (a missing middle name costs a little). So a short query
  cannot score high inside a long listed name (watchman issue 115), and two names that
  share only a generic word score low (legal forms are dropped outright; issue 483).

The index: every listed token's deletion neighbourhood within its budget (as SymSpell
does), so that each query token finds every listed token it may pair with exactly; a
posting list from each listed token to the names holding it; and, per query, the rarest
query tokens that any name reaching ``FLOOR`` must pair with (a prefix filter on an upper
bound of the score). Only the names on those tokens' posting lists are scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, combinations

from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.process import extract

from switch.risk.sanctions.normalize import tokens

__all__ = [
    "FLOOR",
    "HIT",
    "PAIR_FLOOR",
    "REVIEW",
    "UNMATCHED_LISTED_WEIGHT",
    "Match",
    "Screener",
    "budget",
    "fold",
    "pair_similarity",
    "similarity",
]

HIT = 0.88  # a decline
REVIEW = 0.80  # an alert for a person to look at
FLOOR = 0.70  # below this, no match is reported at all
PAIR_FLOOR = 0.80  # a token pair below this Jaro-Winkler similarity is no pair
UNMATCHED_LISTED_WEIGHT = 0.35

_EPSILON = 1e-9
_FOLDS = (("x", "ks"), ("ph", "f"), ("ck", "k"), ("q", "k"), ("ou", "u"), ("oo", "u"), ("ee", "i"))


def fold(token: str) -> str:
    """A normalised token spelt for comparison: a few transliteration rules, doubled letters as one."""
    for old, new in _FOLDS:
        if old in token:
            token = token.replace(old, new)
    out = token[:1]
    for char in token[1:]:
        if char != out[-1]:
            out += char
    return out


def budget(folded: str) -> int:
    """How many edits a folded token of this length may differ by and still pair."""
    return 0 if len(folded) <= 2 else 1 if len(folded) <= 6 else 2


def pair_similarity(a: str, b: str) -> float:
    """The similarity of two folded tokens as a pair, or 0.0 where they may not pair."""
    limit = min(budget(a), budget(b))
    if OSA.distance(a, b, score_cutoff=limit) > limit:
        return 0.0
    return JaroWinkler.normalized_similarity(a, b, score_cutoff=PAIR_FLOOR)


def _combine(pairs: list[tuple[float, int, int]], query_lengths: Sequence[int], listed_lengths: Sequence[int]) -> float:
    """The score from the candidate pairs (similarity, query index, listed index)."""
    pairs.sort(key=lambda p: (-p[0], -(query_lengths[p[1]] + listed_lengths[p[2]]), p[1], p[2]))
    used_query = used_listed = 0
    weighted = 0.0
    matched_listed = matched = 0
    for sim, qi, lj in pairs:
        if used_query >> qi & 1 or used_listed >> lj & 1:
            continue
        used_query |= 1 << qi
        used_listed |= 1 << lj
        weighted += sim * (query_lengths[qi] + listed_lengths[lj])
        matched_listed += listed_lengths[lj]
        matched += 1
    if not matched:
        return 0.0
    unmatched_listed = sum(listed_lengths) - matched_listed
    weight = UNMATCHED_LISTED_WEIGHT if matched >= 2 else 1.0
    return weighted / (sum(query_lengths) + matched_listed + weight * unmatched_listed)


def _score_folded(query: Sequence[str], listed: Sequence[str]) -> float:
    pairs = []
    for qi, q in enumerate(query):
        for lj, item in enumerate(listed):
            sim = pair_similarity(q, item)
            if sim:
                pairs.append((sim, qi, lj))
    return _combine(pairs, [len(q) for q in query], [len(item) for item in listed])


def similarity(query: str, listed: str) -> float:
    """The score of a query name against one listed name, 0..1, without any index."""
    return _score_folded([fold(t) for t in tokens(query)], [fold(t) for t in tokens(listed)])


@dataclass(frozen=True, slots=True)
class Match:
    score: float  # 0..1
    uid: str  # the listed party
    listed_name: str  # the name (primary or alias) that matched, as published


_PAIRS_OF: dict[int, list[tuple[int, int]]] = {}


def _deletions(token: str, edits: int) -> list[str]:
    """The token with up to `edits` (0 to 2) of its letters deleted, every way (repeats possible)."""
    if not edits:
        return [token]
    n = len(token)
    out = [token, *[token[:i] + token[i + 1 :] for i in range(n)]]
    if edits > 1:
        pairs = _PAIRS_OF.get(n)
        if pairs is None:
            pairs = _PAIRS_OF[n] = list(combinations(range(n), 2))
        out += [token[:i] + token[i + 1 : j] + token[j + 1 :] for i, j in pairs]
    return out


class Screener:
    """A sanctions list indexed once, screened many times; immutable after construction."""

    def __init__(self, entries: Sequence[tuple[str, Sequence[str]]]) -> None:
        self._uids: list[str] = []
        self._published: list[str] = []
        self._names: list[tuple[int, ...]] = []  # vocabulary ids per listed name
        self._lengths: list[tuple[int, ...]] = []
        vocabulary: dict[str, int] = {}
        postings: list[list[int]] = []
        for uid, names in entries:
            seen: set[tuple[str, ...]] = set()
            for published in names:
                folded = tuple(fold(t) for t in tokens(published))
                if not folded or folded in seen:
                    continue
                seen.add(folded)
                index = len(self._names)
                ids = []
                for token in folded:
                    vid = vocabulary.setdefault(token, len(vocabulary))
                    if vid == len(postings):
                        postings.append([])
                    if not postings[vid] or postings[vid][-1] != index:
                        postings[vid].append(index)
                    ids.append(vid)
                self._uids.append(uid)
                self._published.append(published)
                self._names.append(tuple(ids))
                self._lengths.append(tuple(len(t) for t in folded))
        self._vocabulary = list(vocabulary)
        self._postings = [tuple(p) for p in postings]
        self._budgets = [budget(t) for t in self._vocabulary]
        neighbours: dict[str, list[int]] = {}
        for vid, token in enumerate(self._vocabulary):
            for variant in set(_deletions(token, self._budgets[vid])):
                neighbours.setdefault(variant, []).append(vid)
        self._neighbours = {variant: tuple(ids) for variant, ids in neighbours.items()}
        # What each listed token pairs with, for query tokens spelt as some listed token is.
        self._known = {token: self._pairable(token) for token in self._vocabulary}

    def __len__(self) -> int:
        return len(self._names)

    def best(self, name: str) -> Match | None:
        """The best match of a query name, or None if nothing scores FLOOR or more."""
        return self.best_many([name])[0]

    def best_many(self, names: Sequence[str]) -> list[Match | None]:
        """best() of each name; tokens the names share are looked up once."""
        cache: dict[str, dict[int, float]] = {}
        return [self._best(name, cache) for name in names]

    def _pairable(self, token: str) -> dict[int, float]:
        """Every listed token (vocabulary id) this folded query token pairs with, and how well."""
        edits = budget(token)
        candidates = set(chain.from_iterable(filter(None, map(self._neighbours.get, _deletions(token, edits)))))
        if not candidates:
            return {}
        vocabulary, budgets = self._vocabulary, self._budgets
        ids = list(candidates)
        out = {}
        for _, sim, at in extract(
            token, [vocabulary[vid] for vid in ids], scorer=JaroWinkler.normalized_similarity,
            score_cutoff=PAIR_FLOOR, limit=None,
        ):  # fmt: skip
            vid = ids[at]
            limit = min(edits, budgets[vid])
            if OSA.distance(token, vocabulary[vid], score_cutoff=limit) <= limit:
                out[vid] = sim
        return out

    def _best(self, name: str, cache: dict[str, dict[int, float]]) -> Match | None:
        query = [fold(t) for t in tokens(name)]
        if not query:
            return None
        lengths = [len(t) for t in query]
        pairable: dict[int, list[tuple[float, int]]] = {}  # listed token -> (similarity, query index)
        matchable = []
        postings, vocabulary, known = self._postings, self._vocabulary, self._known
        for qi, token in enumerate(query):
            found = known.get(token) or cache.get(token)
            if found is None:
                found = cache[token] = self._pairable(token)
            if found:
                for vid, sim in found.items():
                    pairable.setdefault(vid, []).append((sim, qi))
                longest = max(len(vocabulary[vid]) for vid in found)
                matchable.append((sum(len(postings[vid]) for vid in found), qi, longest, found))
        if not matchable:
            return None
        total = sum(lengths)
        names, listed_lengths = self._names, self._lengths
        best_score = FLOOR - _EPSILON
        best_index = -1
        for index in self._candidates(matchable, lengths):
            pairs = []
            hit_query = hit_listed = 0
            seen_query = 0
            name_lengths = listed_lengths[index]
            for lj, vid in enumerate(names[index]):
                found_pairs = pairable.get(vid)
                if found_pairs:
                    hit_listed += name_lengths[lj]
                    for sim, qi in found_pairs:
                        pairs.append((sim, qi, lj))
                        if not seen_query >> qi & 1:
                            seen_query |= 1 << qi
                            hit_query += lengths[qi]
            if not pairs:
                continue
            listed_total = sum(name_lengths)
            upper = (hit_query + hit_listed) / (
                total + hit_listed + UNMATCHED_LISTED_WEIGHT * (listed_total - hit_listed)
            )
            if upper < best_score - _EPSILON:
                continue
            score = _combine(pairs, lengths, name_lengths)
            if score > best_score:
                best_score, best_index = score, index
        if best_index < 0 or best_score < FLOOR:
            return None
        return Match(best_score, self._uids[best_index], self._published[best_index])

    def _candidates(self, matchable: list[tuple[int, int, int, dict[int, float]]], lengths: list[int]) -> list[int]:
        """The names that may reach FLOOR, in list order. Such a name holds a token that pairs
        with one of the rarest query tokens without which the rest cannot reach FLOOR (even
        paired perfectly with tokens as long as the longest they pair with), and holds
        tokens pairing with at least as many query tokens as reaching FLOOR takes."""
        postings = self._postings
        total = sum(lengths)
        floor = FLOOR - _EPSILON
        own_sizes = sorted((lengths[qi] for _, qi, _, _ in matchable), reverse=True)
        longest_sizes = sorted((longest for _, _, longest, _ in matchable), reverse=True)
        needed = own = paired = 0
        for a, b in zip(own_sizes, longest_sizes, strict=True):
            own += a
            paired += b
            needed += 1
            if own + paired >= floor * (total + paired):
                break
        else:
            return []
        matchable.sort(key=lambda item: item[0])
        own = sum(lengths[qi] for _, qi, _, _ in matchable)
        paired = sum(longest for _, _, longest, _ in matchable)
        required: set[int] = set()
        for _, qi, longest, found in matchable:
            if own + paired < floor * (total + paired):
                break  # the tokens left cannot reach FLOOR on their own
            for vid in found:
                required.update(postings[vid])
            own -= lengths[qi]
            paired -= longest
        if needed <= 1:
            return sorted(required)
        counts = Counter(chain.from_iterable(postings[vid] for *_, found in matchable for vid in found))
        return sorted(index for index in required if counts[index] >= needed)
