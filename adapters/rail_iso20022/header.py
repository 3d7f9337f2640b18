"""The Business Application Header (head.001.001.02) every document travels under.

It names the sending and receiving participants, the message id and the message
definition, so a scheme routes and checks a message without opening its document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from . import parties, spec
from .parties import Agent


def build(definition: str, message_id: str, sender: Agent, receiver: Agent, created: str) -> ET.Element:
    header = ET.Element("AppHdr", {"xmlns": spec.HEADER_NAMESPACE})
    for tag, agent in (("Fr", sender), ("To", receiver)):
        parties.write(ET.SubElement(ET.SubElement(header, tag), "FIId"), agent)
    ET.SubElement(header, "BizMsgIdr").text = message_id
    ET.SubElement(header, "MsgDefIdr").text = definition
    ET.SubElement(header, "CreDt").text = created  # the document's own CreDtTm
    return header


def definition(header: ET.Element) -> str:
    return header.findtext("MsgDefIdr", "").strip()


def sender(header: ET.Element) -> Agent:
    return parties.read(header.find("Fr/FIId"))


def receiver(header: ET.Element) -> Agent:
    return parties.read(header.find("To/FIId"))
