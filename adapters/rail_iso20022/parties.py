"""The participants a route names: debtor and creditor agents by clearing-system member id.

Instant schemes identify banks by their member id in the scheme's clearing system
(FedNow: ABA routing numbers under USABA), not by BIC. The same two agents sign the
Business Application Header (From / To) and fill DbtrAgt / CdtrAgt and the case
assignments; an answer swaps them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .identifiers import is_swift_text

# Defaults are the local simulator's participants, so a route without the options still runs.
DEFAULT_CLEARING_SYSTEM = "USABA"
DEFAULT_DEBTOR_AGENT = "000000001"
DEFAULT_CREDITOR_AGENT = "000000002"


@dataclass(frozen=True, slots=True)
class Agent:
    clearing_system: str  # ExternalClearingSystemIdentification1Code: 1 to 5 characters
    member_id: str  # Max35Text, in the SWIFT character set


@dataclass(frozen=True, slots=True)
class Agents:
    debtor: Agent  # the switch's side: it sends the requests
    creditor: Agent


DEFAULT_AGENTS = Agents(
    Agent(DEFAULT_CLEARING_SYSTEM, DEFAULT_DEBTOR_AGENT), Agent(DEFAULT_CLEARING_SYSTEM, DEFAULT_CREDITOR_AGENT)
)


def from_options(name: str, options: Mapping[str, Any]) -> Agents:
    """The route's agents; a bad option fails the start with its name in the message."""
    system = _option(name, options, "clearing_system", DEFAULT_CLEARING_SYSTEM)
    if not (1 <= len(system) <= 5 and system.isascii() and system.isalnum() and system.isupper()):
        raise ValueError(f"adapter {name!r}: option clearing_system must be 1 to 5 upper-case letters or digits")
    debtor = _option(name, options, "debtor_agent_member_id", DEFAULT_DEBTOR_AGENT)
    creditor = _option(name, options, "creditor_agent_member_id", DEFAULT_CREDITOR_AGENT)
    for option, value in (("debtor_agent_member_id", debtor), ("creditor_agent_member_id", creditor)):
        if not (1 <= len(value) <= 35 and is_swift_text(value)):
            raise ValueError(f"adapter {name!r}: option {option} must be 1 to 35 characters of the SWIFT set")
    return Agents(Agent(system, debtor), Agent(system, creditor))


def write(parent: ET.Element, agent: Agent) -> None:
    """FinInstnId/ClrSysMmbId under parent (a BranchAndFinancialInstitutionIdentification)."""
    member = ET.SubElement(ET.SubElement(parent, "FinInstnId"), "ClrSysMmbId")
    ET.SubElement(ET.SubElement(member, "ClrSysId"), "Cd").text = agent.clearing_system
    ET.SubElement(member, "MmbId").text = agent.member_id


def read(parent: ET.Element | None) -> Agent:
    """The agent under parent (namespaces stripped); empty fields when absent."""
    member = parent.find("FinInstnId/ClrSysMmbId") if parent is not None else None
    if member is None:
        return Agent("", "")
    return Agent(member.findtext("ClrSysId/Cd", "").strip(), member.findtext("MmbId", "").strip())


def _option(name: str, options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"adapter {name!r}: option {key} must be a string")
    return value
