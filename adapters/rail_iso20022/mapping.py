"""Pure translation between the adapter contract and ISO 20022 messages: no I/O.

Requests: acmt.023 (resolve an alias or account), pacs.008 (credit transfer),
pacs.004 (return: a refund) and camt.056 (recall: a reversal). Answers: acmt.024,
pacs.002 and camt.029 (the resolution of a recall). The rail's own request: the
pacs.004 that returns the money of an accepted recall, which the switch answers
with a pacs.002. The EndToEndId and TxId are the switch's transaction id in the
SWIFT character set, and the transfer's MsgId and UETR are derived from it, so a
return or a recall names its original (OrgnlMsgId, OrgnlEndToEndId, OrgnlTxId,
OrgnlUETR) without the switch storing them. Every other MsgId is assigned by the
client, and every answer carries it back as the original message id. Requests go
from the route's debtor agent to its creditor agent; answers go back.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from switch.adapters.contract import AdapterRequest, AdapterResult, Return
from switch.domain.models import Money, OperationKind, mask_account
from switch.domain.response_codes import ResponseCode

from . import identifiers, parties, spec
from .amounts import to_decimal, to_minor_units
from .framing import Message
from .identifiers import MAX_ACCOUNT, checked, end_to_end
from .parties import DEFAULT_AGENTS, Agents

MAX_ALIAS = 2048  # Max2048Text: a proxy's id
MAX_NAME = 140  # Max140Text
NOT_PROVIDED = "NOTPROVIDED"  # the name schemes accept for a party whose name is not known


def proxy_type(account_id: str) -> str:
    """The alias kind: TELE (phone "+..."), EMAL (e-mail), VPA ("x@bank"); "" for an account number."""
    if account_id.startswith("+") and account_id[1:].isdigit():
        return "TELE"
    local, at, domain = account_id.partition("@")
    if at and local and domain:
        return "EMAL" if "." in domain else "VPA"
    return ""


def identification_request(msg_id: str, account_id: str, *, now: datetime, agents: Agents = DEFAULT_AGENTS) -> Message:
    body = ET.Element(spec.ROOTS[spec.IDENTIFICATION_REQUEST])
    _assignment(body, msg_id, now, agents.debtor, agents.creditor)
    verification = _sub(body, "Vrfctn")
    _sub(verification, "Id", msg_id)
    account = _sub(_sub(verification, "PtyAndAcctId"), "Acct")
    kind = proxy_type(account_id)
    if kind:
        proxy = _sub(account, "Prxy")
        _sub(_sub(proxy, "Tp"), "Cd" if kind != "VPA" else "Prtry", kind)
        _sub(proxy, "Id", identifiers.printable(account_id, "account id", MAX_ALIAS))
    else:
        _account_id(account, account_id)
    return Message(spec.IDENTIFICATION_REQUEST, body, agents.debtor, agents.creditor)


def credit_transfer(
    msg_id: str, request: AdapterRequest, debtor_account: str, *, now: datetime, agents: Agents = DEFAULT_AGENTS
) -> Message:
    """The pacs.008 for an authorization, from the debtor's resolved account."""
    if request.kind is not OperationKind.AUTHORIZE:
        raise ValueError(f"a credit transfer cannot carry a {request.kind.value}")
    body = ET.Element(spec.ROOTS[spec.CREDIT_TRANSFER])
    header = _group_header(body, identifiers.transfer_message_id(request.transaction_id), now)
    _sub(_sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    transaction = _sub(body, "CdtTrfTxInf")
    ids = _sub(transaction, "PmtId")
    _sub(ids, "InstrId", checked(msg_id, "message id"))
    _sub(ids, "EndToEndId", end_to_end(request.transaction_id))
    _sub(ids, "TxId", end_to_end(request.transaction_id))
    _sub(ids, "UETR", identifiers.uetr(request.transaction_id))
    _amount(transaction, "IntrBkSttlmAmt", request)
    _amount(transaction, "InstdAmt", request)
    _sub(transaction, "ChrgBr", "SLEV")
    _sub(_sub(transaction, "Dbtr"), "Nm", _name(request.account.holder_name if request.account else ""))
    _account_id(_sub(transaction, "DbtrAcct"), debtor_account)
    parties.write(_sub(transaction, "DbtrAgt"), agents.debtor)
    parties.write(_sub(transaction, "CdtrAgt"), agents.creditor)
    _sub(_sub(transaction, "Cdtr"), "Nm", _name(request.destination.holder_name if request.destination else ""))
    creditor = request.destination.id if request.destination is not None else request.merchant_id
    _account_id(_sub(transaction, "CdtrAcct"), creditor)
    return Message(spec.CREDIT_TRANSFER, body, agents.debtor, agents.creditor)


def undo(msg_id: str, request: AdapterRequest, *, now: datetime, agents: Agents = DEFAULT_AGENTS) -> Message:
    """A camt.056 recall for a reversal, a pacs.004 return for a refund, naming the original
    by its MsgId, EndToEndId, TxId and UETR."""
    if request.kind is OperationKind.REVERSE:
        body = ET.Element(spec.ROOTS[spec.RECALL])
        _case_assignment(body, msg_id, now, agents.debtor, agents.creditor)
        transaction = _sub(_sub(body, "Undrlyg"), "TxInf")
        _sub(transaction, "CxlId", msg_id)
        _original_ids(transaction, request.transaction_id)
        _amount(transaction, "OrgnlIntrBkSttlmAmt", request)
        _sub(_sub(_sub(transaction, "CxlRsnInf"), "Rsn"), "Cd", spec.RECALL_REASON)
        return Message(spec.RECALL, body, agents.debtor, agents.creditor)
    if request.kind is OperationKind.REFUND:
        _positive(request.amount.minor_units)
        # The refund's own reference, the same on every send: the rail returns it once.
        return_id = checked((request.reference or msg_id).replace("_", "-"), "return id")
        amount = (to_decimal(request.amount.minor_units, request.amount.currency), request.amount.currency)
        return _payment_return(
            msg_id, return_id, request.transaction_id, amount=amount, reason=spec.RETURN_REASON, now=now, agents=agents
        )
    raise ValueError(f"an ISO 20022 rail cannot {request.kind.value}")


def recall_return(msg_id: str, transfer: Message, return_id: str, *, now: datetime) -> Message:
    """The pacs.004 a rail sends when a recall of `transfer` (a pacs.008) was accepted: all
    of the transfer's amount, back from its creditor agent to its debtor agent."""
    settled = transfer.body.find("CdtTrfTxInf/IntrBkSttlmAmt")
    if settled is None or not settled.text:
        raise ValueError("a transfer without its settlement amount")
    transaction_id = identifiers.transaction_id(transfer.text("CdtTrfTxInf/PmtId/EndToEndId"))
    agents = Agents(transfer.receiver, transfer.sender)
    amount = (settled.text, settled.get("Ccy", ""))
    return _payment_return(
        msg_id, return_id, transaction_id, amount=amount, reason=spec.RETURN_AFTER_RECALL, now=now, agents=agents
    )


def returned(message: Message) -> Return:
    """What a pacs.004 from the rail returns, for the switch; ValueError when it names no
    transfer of this switch or no amount it can read."""
    if message.type != spec.PAYMENT_RETURN:
        raise ValueError(f"a {message.type} is not a return")
    transaction_id = identifiers.transaction_id(message.text("TxInf/OrgnlEndToEndId"))
    if message.text("TxInf/OrgnlUETR") != identifiers.uetr(transaction_id):
        raise ValueError("a return whose UETR is not its end-to-end id's transfer's")
    amount = message.body.find("TxInf/RtrdIntrBkSttlmAmt")
    if amount is None:
        raise ValueError("a return without its amount")
    code = amount.get("Ccy", "")
    reference = checked(message.text("TxInf/RtrId"), "return id")
    money = Money(to_minor_units(amount.text or "", code), code)
    return Return(transaction_id, money, reference, message.text("TxInf/RtrRsnInf/Rsn/Cd"))


def _payment_return(
    msg_id: str,
    return_id: str,
    transaction_id: str,
    *,
    amount: tuple[str, str],
    reason: str,
    now: datetime,
    agents: Agents,
) -> Message:
    body = ET.Element(spec.ROOTS[spec.PAYMENT_RETURN])
    header = _group_header(body, msg_id, now)
    _sub(_sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    transaction = _sub(body, "TxInf")
    _sub(transaction, "RtrId", return_id)
    _original_ids(transaction, transaction_id)
    _sub(transaction, "RtrdIntrBkSttlmAmt", amount[0]).set("Ccy", amount[1])
    _sub(transaction, "ChrgBr", "SLEV")
    _sub(_sub(_sub(transaction, "RtrRsnInf"), "Rsn"), "Cd", reason)
    return Message(spec.PAYMENT_RETURN, body, agents.debtor, agents.creditor)


def identification_report(msg_id: str, request: Message, resolved: str | None, *, now: datetime) -> Message:
    """The acmt.024 answer to an acmt.023: the resolved account, or not found (AC01)."""
    body = ET.Element(spec.ROOTS[spec.IDENTIFICATION_REPORT])
    _assignment(body, msg_id, now, request.receiver, request.sender)
    _sub(_sub(body, "OrgnlAssgnmt"), "MsgId", request_key(request)[0])
    report = _sub(body, "Rpt")
    _sub(report, "OrgnlId", request.text("Vrfctn/Id"))
    _sub(report, "Vrfctn", "true" if resolved is not None else "false")
    if resolved is None:
        _sub(_sub(report, "Rsn"), "Cd", spec.NOT_FOUND)
    else:
        _account_id(_sub(_sub(report, "UpdtdPtyAndAcctId"), "Acct"), resolved)
    return Message(spec.IDENTIFICATION_REPORT, body, request.receiver, request.sender)


def status_report(
    msg_id: str, request: Message, status: str, *, reason: str = "", reference: str = "", now: datetime
) -> Message:
    """The pacs.002 answer to a pacs.008 or pacs.004."""
    body = ET.Element(spec.ROOTS[spec.STATUS_REPORT])
    _group_header(body, msg_id, now, count=False)
    original, end_to_end = request_key(request)
    group = _sub(body, "OrgnlGrpInfAndSts")
    _sub(group, "OrgnlMsgId", original)
    _sub(group, "OrgnlMsgNmId", spec.definition(request.type))
    transaction = _sub(body, "TxInfAndSts")
    _sub(transaction, "OrgnlEndToEndId", end_to_end)
    if uetr := request.text("CdtTrfTxInf/PmtId/UETR") or request.text("TxInf/OrgnlUETR"):
        _sub(transaction, "OrgnlUETR", uetr)
    _sub(transaction, "TxSts", status)
    if reason:
        _sub(_sub(_sub(transaction, "StsRsnInf"), "Rsn"), "Cd", reason)
    if reference:
        _sub(transaction, "ClrSysRef", reference)
    return Message(spec.STATUS_REPORT, body, request.receiver, request.sender)


def resolution(msg_id: str, recall: Message, accepted: bool, *, reason: str = "", now: datetime) -> Message:
    """The camt.029 answer to a camt.056: the recall accepted (CNCL) or rejected (RJCR), with
    the reason for a rejection (NOOR: no such transfer, CUST: the creditor declined, ...)."""
    body = ET.Element(spec.ROOTS[spec.RESOLUTION])
    _case_assignment(body, msg_id, now, recall.receiver, recall.sender)
    _sub(_sub(body, "Sts"), "Conf", spec.RECALL_ACCEPTED if accepted else spec.RECALL_REJECTED)
    transaction = _sub(_sub(body, "CxlDtls"), "TxInfAndSts")
    group = _sub(transaction, "OrgnlGrpInf")
    original, end_to_end = request_key(recall)
    _sub(group, "OrgnlMsgId", original)
    _sub(group, "OrgnlMsgNmId", spec.definition(recall.type))
    _sub(transaction, "OrgnlEndToEndId", end_to_end)
    if uetr := recall.text("Undrlyg/TxInf/OrgnlUETR"):
        _sub(transaction, "OrgnlUETR", uetr)
    _sub(transaction, "TxCxlSts", "ACCR" if accepted else "RJCR")
    if reason:
        _sub(_sub(_sub(transaction, "CxlStsRsnInf"), "Rsn"), "Cd", reason)
    return Message(spec.RESOLUTION, body, recall.receiver, recall.sender)


def request_key(message: Message) -> tuple[str, str]:
    """A request's MsgId and EndToEndId (empty for an acmt.023)."""
    if message.type == spec.IDENTIFICATION_REQUEST:
        return message.text("Assgnmt/MsgId"), ""
    if message.type == spec.RECALL:
        return message.text("Assgnmt/Id"), message.text("Undrlyg/TxInf/OrgnlEndToEndId")
    if message.type == spec.PAYMENT_RETURN:
        return message.text("GrpHdr/MsgId"), message.text("TxInf/OrgnlEndToEndId")
    return message.text("GrpHdr/MsgId"), message.text("CdtTrfTxInf/PmtId/EndToEndId")


def answer_key(message: Message) -> tuple[str, str]:
    """The MsgId and EndToEndId of the request an answer answers."""
    if message.type == spec.IDENTIFICATION_REPORT:
        return message.text("OrgnlAssgnmt/MsgId"), ""
    if message.type == spec.RESOLUTION:
        found = "CxlDtls/TxInfAndSts/"
        return message.text(found + "OrgnlGrpInf/OrgnlMsgId"), message.text(found + "OrgnlEndToEndId")
    return message.text("OrgnlGrpInfAndSts/OrgnlMsgId"), message.text("TxInfAndSts/OrgnlEndToEndId")


def resolved_account(report: Message) -> str | None:
    """The account an acmt.024 resolved to; None when not found."""
    if report.text("Rpt/Vrfctn") != "true":
        return None
    return report.text("Rpt/UpdtdPtyAndAcctId/Acct/Id/Othr/Id") or None


def not_found() -> AdapterResult:
    code = ResponseCode.INVALID_ACCOUNT
    return AdapterResult(code.code, f"{code.message}: alias or account not found")


def to_result(answer: Message) -> AdapterResult:
    """The AdapterResult for a pacs.002 or camt.029; an unknown status or reason is a do-not-honor decline."""
    if answer.type == spec.RESOLUTION:
        return _resolution_result(answer)
    if answer.type != spec.STATUS_REPORT:
        code = ResponseCode.SYSTEM_ERROR
        return AdapterResult(code.code, f"{code.message}: unexpected {answer.type} answer")
    status = answer.text("TxInfAndSts/TxSts")
    reference = answer.text("TxInfAndSts/ClrSysRef")
    if status in spec.ACCEPTED:
        code = ResponseCode.APPROVED
        return AdapterResult(code.code, code.message, authorization_code=_code(reference), network_reference=reference)
    reason = answer.text("TxInfAndSts/StsRsnInf/Rsn/Cd")
    code = spec.REASONS.get(reason, ResponseCode.DO_NOT_HONOR) if status == spec.REJECTED else ResponseCode.DO_NOT_HONOR
    return AdapterResult(
        code.code, f"{code.message} ({status} {reason})".replace(" )", ")"), network_reference=reference
    )


def _resolution_result(answer: Message) -> AdapterResult:
    # Accepted: the creditor agent returns the money later, by a pacs.004 the adapter
    # delivers. Rejected because the rail never received the transfer: nothing moved, so
    # nothing is left to undo. Rejected otherwise: the money stays moved.
    status = answer.text("Sts/Conf")
    reason = answer.text("CxlDtls/TxInfAndSts/CxlStsRsnInf/Rsn/Cd")
    if status == spec.RECALL_ACCEPTED:
        code = ResponseCode.APPROVED
        return AdapterResult(code.code, f"{code.message}: recall accepted, return to follow", settles_later=True)
    if status == spec.RECALL_REJECTED and reason == spec.NO_ORIGINAL:
        code = ResponseCode.APPROVED
        return AdapterResult(code.code, f"{code.message}: the rail never received the transfer; nothing moved")
    code = ResponseCode.DO_NOT_HONOR
    return AdapterResult(code.code, f"{code.message}: recall {status or 'unresolved'} {reason}".rstrip())


def describe(message: Message) -> str:
    """A one-line summary for logs: ids and statuses, account ids masked."""
    msg_id, end_to_end = request_key(message) if message.type not in _ANSWERS else answer_key(message)
    parts = [message.type, f"msg={msg_id}"]
    if end_to_end:
        parts.append(f"e2e={end_to_end}")
    for path in ("TxInfAndSts/TxSts", "TxInfAndSts/StsRsnInf/Rsn/Cd", "Rpt/Vrfctn", "Sts/Conf"):
        if value := message.text(path):
            parts.append(f"{path.rpartition('/')[2].lower()}={value}")
    parents = {child: parent for parent in message.body.iter() for child in parent}
    for element in message.body.iter():
        if element.tag == "Id" and element.text and _is_account(parents, element):
            parts.append(f"{_account_role(parents, element)}={mask_account(element.text.strip())}")
    return " ".join(parts)


_ANSWERS = frozenset({spec.IDENTIFICATION_REPORT, spec.STATUS_REPORT, spec.RESOLUTION})


def _is_account(parents: dict[ET.Element, ET.Element], element: ET.Element) -> bool:
    parent = parents.get(element)
    return parent is not None and parent.tag in ("Othr", "Prxy")


# A log key per account a message names, so a transfer's two accounts read apart.
_ACCOUNT_ROLES = {"DbtrAcct": "debtor", "CdtrAcct": "creditor", "Prxy": "proxy", "Acct": "acct"}


def _account_role(parents: dict[ET.Element, ET.Element], element: ET.Element) -> str:
    ancestor = parents.get(element)
    while ancestor is not None and ancestor.tag not in _ACCOUNT_ROLES:
        ancestor = parents.get(ancestor)
    return _ACCOUNT_ROLES[ancestor.tag] if ancestor is not None else "acct"


def _code(reference: str) -> str:
    return "".join(c for c in reference.upper() if c.isascii() and c.isalnum())[:6]


def _assignment(body: ET.Element, msg_id: str, now: datetime, assigner: parties.Agent, assignee: parties.Agent) -> None:
    """An acmt identification assignment: MsgId, CreDtTm, then the parties."""
    assignment = _sub(body, "Assgnmt")
    _sub(assignment, "MsgId", checked(msg_id, "message id"))
    _sub(assignment, "CreDtTm", now.isoformat(timespec="seconds"))
    parties.write(_sub(_sub(assignment, "Assgnr"), "Agt"), assigner)
    parties.write(_sub(_sub(assignment, "Assgne"), "Agt"), assignee)


def _case_assignment(
    body: ET.Element, msg_id: str, now: datetime, assigner: parties.Agent, assignee: parties.Agent
) -> None:
    """A camt case assignment: Id, the parties, then CreDtTm."""
    assignment = _sub(body, "Assgnmt")
    _sub(assignment, "Id", checked(msg_id, "message id"))
    parties.write(_sub(_sub(assignment, "Assgnr"), "Agt"), assigner)
    parties.write(_sub(_sub(assignment, "Assgne"), "Agt"), assignee)
    _sub(assignment, "CreDtTm", now.isoformat(timespec="seconds"))


def _original_ids(transaction: ET.Element, transaction_id: str) -> None:
    group = _sub(transaction, "OrgnlGrpInf")
    _sub(group, "OrgnlMsgId", identifiers.transfer_message_id(transaction_id))
    _sub(group, "OrgnlMsgNmId", spec.definition(spec.CREDIT_TRANSFER))
    _sub(transaction, "OrgnlEndToEndId", end_to_end(transaction_id))
    _sub(transaction, "OrgnlTxId", end_to_end(transaction_id))
    _sub(transaction, "OrgnlUETR", identifiers.uetr(transaction_id))


def _name(holder_name: str) -> str:
    name = "".join(c for c in holder_name if c.isprintable()).strip()[:MAX_NAME]
    return name or NOT_PROVIDED


def _group_header(body: ET.Element, msg_id: str, now: datetime, *, count: bool = True) -> ET.Element:
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", checked(msg_id, "message id"))
    _sub(header, "CreDtTm", now.isoformat(timespec="seconds"))
    if count:
        _sub(header, "NbOfTxs", "1")
    return header


def _positive(minor_units: int) -> None:
    if minor_units <= 0:
        raise ValueError("an amount must be positive")


def _amount(parent: ET.Element, tag: str, request: AdapterRequest) -> None:
    _positive(request.amount.minor_units)
    _sub(parent, tag, to_decimal(request.amount.minor_units, request.amount.currency)).set(
        "Ccy", request.amount.currency
    )


def _account_id(parent: ET.Element, account_id: str) -> None:
    _sub(_sub(_sub(parent, "Id"), "Othr"), "Id", identifiers.printable(account_id, "account id", MAX_ACCOUNT))


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element
