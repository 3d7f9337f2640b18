"""PromoteModel: the challenger of the policy bundle in force made its live model, in every worker.

The journal is the record: the promotion is journaled first, then this worker reloads
its policy (which reads the latest promotion of the bundle's version from the journal)
and the others are told to reload too (spread: SIGHUP to the supervisor, which relays
it). A worker, or a switch, that starts later reads the same row, so a restart keeps
the promotion. Promoting the bundle's original model back swaps the two again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switch.domain.errors import FailedPrecondition, Unavailable
from switch.risk.policy import RiskPolicy
from switch.stores import store_errors
from switch.stores.base import Journal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Models:
    """The policy in force and its two models, as PromoteModel answers them."""

    policy_version: str
    live_model: str
    challenger_model: str


def models_of(policy: RiskPolicy) -> Models:
    return Models(policy.version, policy.live_model, policy.challenger_model)


def _nowhere() -> None:
    """The spread of a switch with one process: nobody else to tell."""


class Promotions:
    def __init__(
        self,
        journal: Journal,
        policy: Callable[[], RiskPolicy],
        reload: Callable[[], Awaitable[bool]],
        spread: Callable[[], None] = _nowhere,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """policy: the one in force in this worker; reload: reads the bundle and its latest
        promotion again (False: refused); spread: makes every other worker reload."""
        self._journal = journal
        self._policy = policy
        self._reload = reload
        self._spread = spread
        self._clock = clock
        self._store_errors = store_errors()

    async def promote(self, policy_version: str, model_version: str, caller: str, reason: str) -> Models:
        """Makes model_version the live model of the bundle policy_version, which must be the
        one in force; FailedPrecondition otherwise. The live model already: nothing changes."""
        policy = self._policy()
        _check(policy, policy_version, model_version)
        if model_version == policy.live_model:
            return models_of(policy)
        try:
            await self._journal.record_model_promotion(policy_version, model_version, caller, reason, self._clock())
        except self._store_errors as exc:
            raise Unavailable(f"the journal did not answer ({type(exc).__name__}); nothing changed, retry") from exc
        log.warning("model %s promoted in policy %s by %s", model_version, policy_version, caller or "(anonymous)")
        reloaded = await self._reload()
        self._spread()  # the others read the journaled promotion whatever this worker's reload did
        now = self._policy()
        if not reloaded:
            raise Unavailable("the promotion is journaled; this worker could not reload its policy (see its log)")
        if now.version != policy_version:  # the bundle's file changed meanwhile: another policy is in force
            raise FailedPrecondition(f"the policy in force is now {now.version}: the promotion applies to no other")
        return models_of(now)


def _check(policy: RiskPolicy, policy_version: str, model_version: str) -> None:
    """FailedPrecondition unless the policy in force is a bundle, the one named, with that model."""
    if not policy.version:
        raise FailedPrecondition("promotion needs a [policy] bundle")
    if policy_version != policy.version:
        raise FailedPrecondition(f"policy_version: the policy in force is {policy.version}")
    live, challenger = policy.live_model, policy.challenger_model
    if not live:
        raise FailedPrecondition("model_version: the policy in force has no fraud model")
    if model_version not in (live, challenger) or not model_version:
        shadow = f"challenger {challenger}" if challenger else "no challenger"
        raise FailedPrecondition(f"model_version: the policy in force has live model {live} and {shadow}")
