"""Pure translation between the adapter contract and ISO 20022 messages: no I/O.

Requests: acmt.023 (resolve an alias or account), pacs.008 (credit transfer),
pacs.004 (return: a refund) and camt.056 (recall: a reversal). Answers: acmt.024
and pacs.002. The EndToEndId is the switch's transaction id, so a return or a
recall names its original; every message's MsgId is assigned by the client and
every answer carries it back as the original message id.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from switch.adapters.contract import AdapterRequest, AdapterResult
from switch.domain.models import OperationKind, mask_account
from switch.domain.response_codes import ResponseCode

from . import spec
from .amounts import to_decimal
from .framing import Message

MAX_ID = 35  # Max35Text: MsgId, EndToEndId, account ids


def proxy_type(account_id: str) -> str:
    """The alias kind: TELE (phone "+..."), EMAL (e-mail), VPA ("x@bank"); "" for an account number."""
    if account_id.startswith("+") and account_id[1:].isdigit():
        return "TELE"
    local, at, domain = account_id.partition("@")
    if at and local and domain:
        return "EMAL" if "." in domain else "VPA"
    return ""


def identification_request(msg_id: str, account_id: str, *, now: datetime) -> Message:
    body = ET.Element(spec.ROOTS[spec.IDENTIFICATION_REQUEST])
    _assignment(body, msg_id, now)
    verification = _sub(body, "Vrfctn")
    _sub(verification, "Id", msg_id)
    account = _sub(_sub(verification, "PtyAndAcctId"), "Acct")
    kind = proxy_type(account_id)
    if kind:
        proxy = _sub(account, "Prxy")
        _sub(_sub(proxy, "Tp"), "Cd" if kind != "VPA" else "Prtry", kind)
        _sub(proxy, "Id", _checked(account_id, "account id"))
    else:
        _account_id(account, account_id)
    return Message(spec.IDENTIFICATION_REQUEST, body)


def credit_transfer(msg_id: str, request: AdapterRequest, debtor_account: str, *, now: datetime) -> Message:
    """The pacs.008 for an authorization, from the debtor's resolved account."""
    if request.kind is not OperationKind.AUTHORIZE:
        raise ValueError(f"a credit transfer cannot carry a {request.kind.value}")
    body = ET.Element(spec.ROOTS[spec.CREDIT_TRANSFER])
    header = _group_header(body, msg_id, now)
    _sub(_sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    transaction = _sub(body, "CdtTrfTxInf")
    ids = _sub(transaction, "PmtId")
    _sub(ids, "InstrId", msg_id)
    _sub(ids, "EndToEndId", _checked(request.transaction_id, "transaction id"))
    _sub(ids, "TxId", msg_id)
    _amount(transaction, "IntrBkSttlmAmt", request)
    _amount(transaction, "InstdAmt", request)
    _sub(transaction, "ChrgBr", "SLEV")
    if request.account is not None and request.account.holder_name:
        _sub(_sub(transaction, "Dbtr"), "Nm", "".join(c for c in request.account.holder_name if c.isprintable())[:140])
    _account_id(_sub(transaction, "DbtrAcct"), debtor_account)
    creditor = request.destination.id if request.destination is not None else request.merchant_id
    _account_id(_sub(transaction, "CdtrAcct"), creditor)
    return Message(spec.CREDIT_TRANSFER, body)


def undo(msg_id: str, request: AdapterRequest, *, now: datetime) -> Message:
    """A camt.056 recall for a reversal, a pacs.004 return for a refund, naming the original."""
    if request.kind is OperationKind.REVERSE:
        body = ET.Element(spec.ROOTS[spec.RECALL])
        _assignment(body, msg_id, now)
        transaction = _sub(_sub(body, "Undrlyg"), "TxInf")
        _sub(transaction, "CxlId", msg_id)
        _sub(transaction, "OrgnlEndToEndId", _checked(request.transaction_id, "transaction id"))
        _amount(transaction, "OrgnlIntrBkSttlmAmt", request)
        _sub(_sub(_sub(transaction, "CxlRsnInf"), "Rsn"), "Cd", spec.RECALL_REASON)
        return Message(spec.RECALL, body)
    if request.kind is OperationKind.REFUND:
        body = ET.Element(spec.ROOTS[spec.PAYMENT_RETURN])
        _group_header(body, msg_id, now)
        transaction = _sub(body, "TxInf")
        _sub(transaction, "RtrId", msg_id)
        _sub(transaction, "OrgnlEndToEndId", _checked(request.transaction_id, "transaction id"))
        _amount(transaction, "RtrdIntrBkSttlmAmt", request)
        _sub(_sub(_sub(transaction, "RtrRsnInf"), "Rsn"), "Cd", spec.RETURN_REASON)
        return Message(spec.PAYMENT_RETURN, body)
    raise ValueError(f"an ISO 20022 rail cannot {request.kind.value}")


def identification_report(msg_id: str, request: Message, resolved: str | None, *, now: datetime) -> Message:
    """The acmt.024 answer to an acmt.023: the resolved account, or not found (AC01)."""
    body = ET.Element(spec.ROOTS[spec.IDENTIFICATION_REPORT])
    _assignment(body, msg_id, now)
    _sub(_sub(body, "OrgnlAssgnmt"), "MsgId", request_key(request)[0])
    report = _sub(body, "Rpt")
    _sub(report, "OrgnlId", request.text("Vrfctn/Id"))
    _sub(report, "Vrfctn", "true" if resolved is not None else "false")
    if resolved is None:
        _sub(_sub(report, "Rsn"), "Cd", spec.NOT_FOUND)
    else:
        _account_id(_sub(_sub(report, "UpdtdPtyAndAcctId"), "Acct"), resolved)
    return Message(spec.IDENTIFICATION_REPORT, body)


def status_report(
    msg_id: str, request: Message, status: str, *, reason: str = "", reference: str = "", now: datetime
) -> Message:
    """The pacs.002 answer to a pacs.008, pacs.004 or camt.056."""
    body = ET.Element(spec.ROOTS[spec.STATUS_REPORT])
    _group_header(body, msg_id, now, count=False)
    original, end_to_end = request_key(request)
    group = _sub(body, "OrgnlGrpInfAndSts")
    _sub(group, "OrgnlMsgId", original)
    _sub(group, "OrgnlMsgNmId", f"{request.type}.{spec.VERSIONS[request.type]}")
    transaction = _sub(body, "TxInfAndSts")
    _sub(transaction, "OrgnlEndToEndId", end_to_end)
    _sub(transaction, "TxSts", status)
    if reason:
        _sub(_sub(_sub(transaction, "StsRsnInf"), "Rsn"), "Cd", reason)
    if reference:
        _sub(transaction, "ClrSysRef", reference)
    return Message(spec.STATUS_REPORT, body)


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
    """The AdapterResult for a pacs.002; an unknown status or reason is a do-not-honor decline."""
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


def describe(message: Message) -> str:
    """A one-line summary for logs: ids and statuses, account ids masked."""
    msg_id, end_to_end = request_key(message) if message.type not in _ANSWERS else answer_key(message)
    parts = [message.type, f"msg={msg_id}"]
    if end_to_end:
        parts.append(f"e2e={end_to_end}")
    for path in ("TxInfAndSts/TxSts", "TxInfAndSts/StsRsnInf/Rsn/Cd", "Rpt/Vrfctn"):
        if value := message.text(path):
            parts.append(f"{path.rpartition('/')[2].lower()}={value}")
    parents = {child: parent for parent in message.body.iter() for child in parent}
    for element in message.body.iter():
        if element.tag == "Id" and element.text and _is_account(parents, element):
            parts.append(f"{_account_role(parents, element)}={mask_account(element.text.strip())}")
    return " ".join(parts)


_ANSWERS = frozenset({spec.IDENTIFICATION_REPORT, spec.STATUS_REPORT})


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


def _assignment(body: ET.Element, msg_id: str, now: datetime) -> None:
    assignment = _sub(body, "Assgnmt")
    _sub(assignment, "MsgId" if body.tag != spec.ROOTS[spec.RECALL] else "Id", _checked(msg_id, "message id"))
    _sub(assignment, "CreDtTm", now.isoformat(timespec="seconds"))


def _group_header(body: ET.Element, msg_id: str, now: datetime, *, count: bool = True) -> ET.Element:
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", _checked(msg_id, "message id"))
    _sub(header, "CreDtTm", now.isoformat(timespec="seconds"))
    if count:
        _sub(header, "NbOfTxs", "1")
    return header


def _amount(parent: ET.Element, tag: str, request: AdapterRequest) -> None:
    if request.amount.minor_units <= 0:
        raise ValueError("an amount must be positive")
    _sub(parent, tag, to_decimal(request.amount.minor_units, request.amount.currency)).set(
        "Ccy", request.amount.currency
    )


def _account_id(parent: ET.Element, account_id: str) -> None:
    _sub(_sub(_sub(parent, "Id"), "Othr"), "Id", _checked(account_id, "account id"))


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _checked(value: str, what: str) -> str:
    # The message never includes the value: it may be an account id.
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise ValueError(f"{what} must be 1 to {MAX_ID} printable characters")
    return value
