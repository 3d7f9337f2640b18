"""SetHolderTier: a holder's KYC tier, journaled first, then handed to the state store.

The journal is the record: a tier the state store did not take (it did not answer)
is still journaled, and the call fails UNAVAILABLE for the caller to repeat (setting
the same tier again is harmless). A Redis that lost its tiers reloads them all from
the journal before the next claim that needs one (switch.stores.redis).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from switch.cards.tokenizer import Tokenizer
from switch.domain.errors import FailedPrecondition, InvalidRequest, Unavailable, Violation
from switch.domain.kyc import HolderTier
from switch.domain.models import Account, Card, Instrument, Token
from switch.stores import store_errors
from switch.stores.base import Journal, StateStore

log = logging.getLogger(__name__)


class HolderTiers:
    def __init__(
        self,
        tokenizer: Tokenizer,
        journal: Journal,
        state: StateStore,
        tiers: Callable[[], frozenset[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """tiers: those of the policy in force (none: the switch has no KYC tiers to set)."""
        self._tokenizer = tokenizer
        self._journal = journal
        self._state = state
        self._tiers = tiers
        self._clock = clock
        self._store_errors = store_errors()

    async def set(self, holder: Card | Token | Account, tier: str) -> tuple[HolderTier, Instrument]:
        """Puts holder in tier; returns the change and the holder's instrument (masked,
        fingerprinted). A token the tokenizer cannot read is InvalidRequest, as in Authorize."""
        tiers = self._tiers()
        if not tiers:
            raise FailedPrecondition("this switch has no KYC tiers: configure [kyc]")
        if tier not in tiers:
            raise InvalidRequest([Violation("tier", f"must be one of the tiers of [kyc]: {', '.join(sorted(tiers))}")])
        instrument = self._instrument(holder)
        try:
            changed = await self._journal.record_holder_tier(instrument.fingerprint, tier, self._clock())
        except self._store_errors as exc:
            raise Unavailable(f"the journal did not answer ({type(exc).__name__}); nothing changed, retry") from exc
        try:
            await self._state.set_tiers([changed])
        except self._store_errors as exc:
            log.warning("tier change %d journaled, not in the state store", changed.seq, exc_info=True)
            raise Unavailable(
                f"the tier is journaled, the state store did not answer ({type(exc).__name__}); retry"
            ) from exc
        return changed, instrument

    def _instrument(self, holder: Card | Token | Account) -> Instrument:
        if isinstance(holder, Account):
            return self._tokenizer.account(holder)
        if isinstance(holder, Token):
            holder = self._tokenizer.detokenize(holder, holder.key_id)
        return self._tokenizer.card(holder)
