"""What a valid request is: each field's rules, written once, and what is compiled from them.

A Rule is a test of one field's value, a Python expression over `value` that is
true when the value is valid, and the message that says what is wrong when it is
not. A Field's rules are tried in order and only the first that fails is reported,
so a later rule may rely on the earlier ones (the Luhn check sees digits only). An
optional field's empty value passes without its rules. Messages are fixed text:
none quotes a value, so none can echo a card number or a secret.

A Group holds the rules of one protobuf message, in the order they are reported:
its Fields, its Parts (message fields, checked by their own group under their name,
"amount.currency"), a OneOf and Entries (a map). Two things read the same group:

- Group.quick compiles, once at import, a function that reads the fields, tests
  every rule and builds the domain value from them, or answers None. It runs for
  every authorization, so it is plain code: a few boolean expressions, no list, no
  call per rule (a table walked at run time would cost more in calls than the
  tests themselves).
- Group.report lists the violations (field path, message) of a message, in table
  order: what a caller whose request was refused sees in INVALID_ARGUMENT. Each
  field's rules are compiled too, into one function that answers the message of
  the first rule its value fails.

So the quick path accepts exactly the messages with no violation, which
tests/test_convert_rules.py checks rule by rule.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import itertools
import linecache
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from google.protobuf.message import Message

from switch.cards import luhn
from switch.domain import currency
from switch.domain.alerts import MAX_PAGE
from switch.domain.errors import Violation
from switch.v1 import switch_pb2 as pb

MAX_KEY = 128
MAX_PAGE_TOKEN = 256
MAX_ID = 64
MAX_NAME = 128
MAX_ACCOUNT_ID = 128
MAX_RAIL = 32
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
PAN_LENGTHS = range(12, 20)
NO_CARD_NUMBER = "must not contain a card number"

# The names a rule's test may use besides `value` and len, bound once here: the
# compiled code looks them up as its globals, never through a module attribute.
NAMES: Mapping[str, object] = {
    "has_card_number": luhn.contains_card_number,
    "luhn_valid": luhn.luhn_valid,
    "CURRENCIES": frozenset(currency.MINOR_UNIT_EXPONENT),
    "is_rail": re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_RAIL - 1}}}").fullmatch,
    "is_country": re.compile(r"[A-Z]{2}").fullmatch,
}
_USABLE = frozenset(NAMES) | {"value", "len"}

_compiled = itertools.count(1)


def _compile(name: str, source: str, namespace: dict[str, object], what: str) -> Callable[..., Any]:
    """The function name that source defines, with NAMES and namespace for globals.
    linecache keeps the source, so a traceback through it shows the line."""
    filename = f"<switch.api.rules {next(_compiled)}: {what}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    scope: dict[str, Any] = {**NAMES, **namespace}
    exec(compile(source, filename, "exec"), scope)
    function: Callable[..., Any] = scope[name]
    return function


class Rule:
    """One test of a field's value (an expression over `value`, true when it is
    valid) and the violation's description when the test is false."""

    __slots__ = ("check", "message", "test")

    def __init__(self, test: str, message: str) -> None:
        self.test = test
        self.message = message
        source = f"def check(value):\n    return {self.expression('value')}\n"
        self.check: Callable[[Any], Any] = _compile("check", source, {}, f"rule {test}")

    def expression(self, name: str) -> str:
        """The test as source, reading the value from the variable name."""
        tree = ast.parse(self.test, mode="eval")
        unknown = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - _USABLE
        if unknown:
            raise ValueError(f"the rule {self.test!r} uses {sorted(unknown)}: not in switch.api.rules.NAMES")
        return ast.unparse(_Rename(name).visit(tree))

    def __repr__(self) -> str:
        return f"Rule({self.test!r}, {self.message!r})"


class _Rename(ast.NodeTransformer):
    def __init__(self, name: str) -> None:
        self.name = name

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.name, node.ctx) if node.id == "value" else node


REQUIRED = Rule("value", "is required")


class Field:
    """A scalar field (attribute `name`), reported at `path` (its name by default)."""

    __slots__ = ("failure", "name", "optional", "path", "rules")

    def __init__(self, name: str, *rules: Rule, optional: bool = False, path: str | None = None) -> None:
        self.name = name
        self.rules = rules
        self.optional = optional
        self.path = name if path is None else path
        lines = ["def failure(value):"]
        if optional:
            lines += ["    if not value:", "        return None"]
        for index, rule in enumerate(rules):
            lines += [f"    if not ({rule.expression('value')}):", f"        return MESSAGES[{index}]"]
        source = "\n".join([*lines, "    return None\n"])
        messages: dict[str, object] = {"MESSAGES": tuple(rule.message for rule in rules)}
        # The message of the first rule that a value fails; None when it fails none.
        self.failure: Callable[[Any], str | None] = _compile("failure", source, messages, f"field {name}")

    def expression(self, name: str) -> str:
        """All the rules as one boolean expression over the variable name."""
        tests = " and ".join(f"({rule.expression(name)})" for rule in self.rules)
        return f"(not {name} or ({tests}))" if self.optional else tests

    def report(self, message: Any, prefix: str, found: list[Violation]) -> None:
        failed = self.failure(getattr(message, self.name))
        if failed is not None:
            found.append(Violation(prefix + self.path, failed))

    def write(self, out: _Writer, message: str, local: str) -> str:
        variable = f"f_{local}{self.name}"
        out.line(f"{variable} = {message}.{self.name}")
        out.test(self.expression(variable))
        return variable


class Part:
    """A message field whose fields group checks, reported under its name; unset,
    it is "is required", unless optional."""

    __slots__ = ("group", "name", "optional")

    def __init__(self, name: str, group: Group, *, optional: bool = False) -> None:
        self.name = name
        self.group = group
        self.optional = optional

    def report(self, message: Any, prefix: str, found: list[Violation]) -> None:
        if message.HasField(self.name):
            self.group.report(getattr(message, self.name), f"{prefix}{self.name}.", found)
        elif not self.optional:
            found.append(Violation(prefix + self.name, REQUIRED.message))

    def write(self, out: _Writer, message: str, local: str) -> str:
        variable = f"f_{local}{self.name}"
        if not self.optional:
            out.line(f"{variable} = {message}.{self.name}")
            # An unset message field reads as the empty message: when the group refuses
            # that (an unset amount has 0 minor units), no presence test is needed.
            if not self.group.refuses_empty():
                out.test(f"{message}.HasField({self.name!r})")
            return out.build(self.name, local + self.name, self.group.write(out, variable, f"{local}{self.name}_"))
        out.check()
        built = f"v_{local}{self.name}"
        out.line(f"if {message}.HasField({self.name!r}):")
        with out.indented():
            out.line(f"{variable} = {message}.{self.name}")
            values = self.group.write(out, variable, f"{local}{self.name}_")
            out.check()
            out.line(f"{built} = {out.build(self.name, local + self.name, values)}")
        out.line("else:")
        out.line(f"    {built} = None")
        return built


class OneOf:
    """A oneof: which field is set picks the group that checks it (reported under
    "<oneof>.<field>."); none set is `missing`. A scalar field's group (a token's)
    checks fields of the message that holds the oneof, at their own paths."""

    __slots__ = ("cases", "missing", "name", "scalars")

    def __init__(self, name: str, missing: str, **cases: Group) -> None:
        self.name = name
        self.missing = missing
        self.cases = cases
        self.scalars: frozenset[str] = frozenset()

    def bind(self, message_type: type[Message]) -> None:
        oneof = message_type.DESCRIPTOR.oneofs_by_name[self.name]
        if {case.name for case in oneof.fields} != set(self.cases):
            raise ValueError(f"{message_type.__name__}.{self.name} is one of {[f.name for f in oneof.fields]}")
        self.scalars = frozenset(case.name for case in oneof.fields if case.message_type is None)

    def report(self, message: Any, prefix: str, found: list[Violation]) -> None:
        case = message.WhichOneof(self.name)
        if case is None:
            found.append(Violation(prefix + self.name, self.missing))
        elif case in self.scalars:
            self.cases[case].report(message, prefix, found)
        else:
            self.cases[case].report(getattr(message, case), f"{prefix}{self.name}.{case}.", found)

    def write(self, out: _Writer, message: str, local: str) -> str:
        out.check()
        which = f"f_{local}{self.name}"
        built = f"v_{local}{self.name}"
        out.line(f"{which} = {message}.WhichOneof({self.name!r})")
        for index, (case, group) in enumerate(self.cases.items()):
            out.line(f"{'elif' if index else 'if'} {which} == {case!r}:")
            with out.indented():
                holder = message
                if case not in self.scalars:
                    holder = f"f_{local}{case}"
                    out.line(f"{holder} = {message}.{case}")
                values = group.write(out, holder, f"{local}{case}_")
                out.check()
                out.line(f"{built} = {out.build(case, local + case, values)}")
        out.line("else:")
        out.line("    return None")
        return built


class Entries:
    """A map: a rule on the number of entries, reported at its name, and each entry's
    key and value rules, in key order, both reported at entry_path(key). Its value
    is the (key, value) pairs in key order."""

    __slots__ = ("count", "entry_path", "key", "name", "value")

    def __init__(self, name: str, count: Rule, key: Field, value: Field, entry_path: Callable[[str], str]) -> None:
        self.name = name
        self.count = count
        self.key = key
        self.value = value
        self.entry_path = entry_path

    def report(self, message: Any, prefix: str, found: list[Violation]) -> None:
        pairs = tuple(sorted(getattr(message, self.name).items()))
        if not self.count.check(pairs):
            found.append(Violation(prefix + self.name, self.count.message))
        for key, value in pairs:
            path = self.entry_path(key)
            for field, text in ((self.key, key), (self.value, value)):
                failed = field.failure(text)
                if failed is not None:
                    found.append(Violation(path, failed))

    def write(self, out: _Writer, message: str, local: str) -> str:
        out.check()
        entries = f"f_{local}{self.name}"
        pairs = f"v_{local}{self.name}"
        out.line(f"{entries} = {message}.{self.name}")
        out.line(f"if {entries}:")
        with out.indented():
            out.line(f"{pairs} = tuple(sorted({entries}.items()))")
            out.test(self.count.expression(pairs))
            out.check()
            key, value = f"{entries}_key", f"{entries}_value"
            out.line(f"for {key}, {value} in {pairs}:")
            with out.indented():
                out.test(self.key.expression(key))
                out.test(self.value.expression(value))
                out.check()
        out.line("else:")
        out.line(f"    {pairs} = ()" if self.count.check(()) else "    return None")
        return pairs


Member = Field | Part | OneOf | Entries


class Group:
    """The rules of one protobuf message, in the order they are reported."""

    def __init__(self, message_type: type[Message], *members: Member) -> None:
        descriptor = message_type.DESCRIPTOR
        for member in members:
            if isinstance(member, OneOf):
                member.bind(message_type)
            elif member.name not in descriptor.fields_by_name:
                raise ValueError(f"{message_type.__name__} has no field {member.name!r}")
        self.message_type = message_type
        self.members = members

    def report(self, message: Any, prefix: str, found: list[Violation]) -> None:
        """Appends the violations of message to found, each path after prefix ("", or
        one that ends in ".")."""
        for member in self.members:
            member.report(message, prefix, found)

    def refuses_empty(self) -> bool:
        """Whether a rule refuses the empty message."""
        found: list[Violation] = []
        self.report(self.message_type(), "", found)
        return bool(found)

    def quick(
        self,
        build: Callable[..., Any],
        *,
        parts: Mapping[str, Callable[..., Any]] | None = None,
        extras: tuple[str, ...] = (),
    ) -> Callable[..., Any]:
        """A function of (message, *extras) that answers build(each member's value, in
        order, then the extras by name) when the message breaks no rule, else None.
        A part's or a oneof case's value is parts[its name](its own members' values);
        a oneof's, its case's; a map's, its pairs. build and the parts get their
        arguments by position, or by name where they take them only so."""
        out = _Writer(parts or {})
        values = self.write(out, "m", "")
        out.check()
        out.line(f"return {out.call('build', build, values, extras)}")
        source = f"def quick({', '.join(('m', *extras))}):\n" + "".join(f"{line}\n" for line in out.lines)
        return _compile("quick", source, out.namespace, f"{self.message_type.__name__} -> {build.__qualname__}")

    def write(self, out: _Writer, message: str, local: str) -> list[str]:
        return [member.write(out, message, local) for member in self.members]


class _Writer:
    """The source of a quick function being written: lines, and the tests not yet
    checked, which check() writes as one `if not (...): return None`."""

    def __init__(self, parts: Mapping[str, Callable[..., Any]]) -> None:
        self.parts = parts
        self.namespace: dict[str, object] = {}
        self.lines: list[str] = []
        self.tests: list[str] = []
        self.depth = 1

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def test(self, expression: str) -> None:
        self.tests.append(expression)

    def check(self) -> None:
        if not self.tests:
            return
        self.line("if not (")
        for index, test in enumerate(self.tests):
            self.line(f"    {'and ' if index else ''}{test}")
        self.line("):")
        self.line("    return None")
        self.tests = []

    @contextlib.contextmanager
    def indented(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def build(self, part: str, local: str, values: list[str]) -> str:
        """The call of parts[part] (the part or case at local) with values."""
        if part not in self.parts:
            raise ValueError(f"quick() needs parts[{part!r}] to build it")
        return self.call(f"build_{local}", self.parts[part], values)

    def call(self, name: str, function: Callable[..., Any], values: list[str], extras: tuple[str, ...] = ()) -> str:
        self.namespace[name] = function
        parameters = list(inspect.signature(function).parameters.values())
        if len(values) > len(parameters):
            raise ValueError(f"{function.__qualname__} takes {len(parameters)} arguments, not {len(values)}")
        arguments = [
            f"{parameter.name}={value}" if parameter.kind is parameter.KEYWORD_ONLY else value
            for parameter, value in zip(parameters, values, strict=False)
        ]
        return f"{name}({', '.join([*arguments, *(f'{extra}={extra}' for extra in extras)])})"


# ---- the rules ------------------------------------------------------------------------------

HAS_NO_CARD_NUMBER = Rule("not has_card_number(value)", NO_CARD_NUMBER)


def text(max_length: int, *, card_number_allowed: bool = False) -> tuple[Rule, ...]:
    """An identifier or free text: bounded, printable, and holding no card number
    (which would be stored and echoed in clear) unless it is the instrument itself."""
    rules = (
        Rule(f"len(value) <= {max_length}", f"must be at most {max_length} characters"),
        Rule("value.isprintable()", "must not contain control characters"),
    )
    return rules if card_number_allowed else (*rules, HAS_NO_CARD_NUMBER)


def within(of: str, low: int, high: int, message: str) -> Rule:
    """of (an expression over value) from low to high; message may name {low} and {high}."""
    return Rule(f"{low} <= {of} <= {high}", message.format(low=low, high=high))


IS_RAIL = Rule("is_rail(value)", f"must name a rail: lower-case letters, digits, '-' or '_', at most {MAX_RAIL}")
IS_COUNTRY = Rule("is_country(value)", "must be an ISO 3166-1 alpha-2 code, e.g. BR")

IDEMPOTENCY_KEY = Field("idempotency_key", REQUIRED, *text(MAX_KEY))
MERCHANT_ID = Field("merchant_id", REQUIRED, *text(MAX_ID))
TRANSACTION_ID = Field("transaction_id", REQUIRED, *text(MAX_ID))

MONEY = Group(
    pb.Money,
    Field("minor_units", Rule("value > 0", "must be a positive number of minor units")),
    Field("currency", Rule("value in CURRENCIES", "must be an ISO 4217 currency code, e.g. USD")),
)

PAN = Field(
    "pan",
    Rule("value.isascii() and value.isdigit()", "must hold digits only"),
    within("len(value)", PAN_LENGTHS.start, PAN_LENGTHS.stop - 1, "must be {low} to {high} digits"),
    Rule("luhn_valid(value)", "fails the Luhn check"),
)

CARD = Group(
    pb.Card,
    PAN,
    Field("expiry_month", within("value", 1, 12, "must be {low} to {high}")),
    Field("expiry_year", within("value", 2000, 2199, "must be a four-digit year")),
    Field("holder_name", *text(MAX_NAME), optional=True),
)

ACCOUNT = Group(
    pb.Account,
    Field("rail", IS_RAIL, HAS_NO_CARD_NUMBER),
    # An account id may be a long number (a bank account, a phone number without its
    # "+"): 1 in 10 of those passes Luhn, so refusing card-like ones would refuse real
    # accounts. It is the instrument itself, kept like the card is (masked).
    Field("id", REQUIRED, *text(MAX_ACCOUNT_ID, card_number_allowed=True)),
    Field("country", IS_COUNTRY, optional=True),
    Field("holder_name", *text(MAX_NAME), optional=True),
)

# A token is a string in the request's source oneof: its rules are the request's own
# fields, at their own paths.
TOKEN = Group(
    pb.AuthorizeRequest,
    Field("token_key_id", *text(MAX_ID), optional=True),
    # A token never passes Luhn: the tokenizer says so more helpfully when one does.
    Field("token", REQUIRED, *text(MAX_ID, card_number_allowed=True), path="source.token"),
)


def _metadata_entry(key: str) -> str:
    # The field's name quotes the key: not when the key holds a card number.
    if luhn.contains_card_number(key):
        return "metadata[(a key holding a card number)]"
    return f"metadata[{key[:MAX_METADATA_KEY]}]"


AUTHORIZATION = Group(
    pb.AuthorizeRequest,
    IDEMPOTENCY_KEY,
    MERCHANT_ID,
    Part("amount", MONEY),
    OneOf("source", "set one of card, token or account", card=CARD, token=TOKEN, account=ACCOUNT),
    Part("destination", ACCOUNT, optional=True),
    Entries(
        "metadata",
        Rule(f"len(value) <= {MAX_METADATA_ENTRIES}", f"must have at most {MAX_METADATA_ENTRIES} entries"),
        Field("key", REQUIRED, *text(MAX_METADATA_KEY)),
        Field("value", *text(MAX_METADATA_VALUE), optional=True),
        _metadata_entry,
    ),
)

QUOTE = Group(
    pb.QuoteFeeRequest,
    MERCHANT_ID,
    Part("amount", MONEY),
    Field("rail", IS_RAIL, HAS_NO_CARD_NUMBER, optional=True),
    Field("card_country", IS_COUNTRY, optional=True),
    Field("merchant_country", IS_COUNTRY, optional=True),
    Field(
        "settlement_currency",
        Rule("value in CURRENCIES", "must be an ISO 4217 currency code, e.g. EUR"),
        optional=True,
    ),
)

CAPTURE = Group(pb.CaptureRequest, TRANSACTION_ID, IDEMPOTENCY_KEY, Part("amount", MONEY, optional=True))
VOID = Group(pb.VoidRequest, TRANSACTION_ID, IDEMPOTENCY_KEY)
REFUND = Group(pb.RefundRequest, TRANSACTION_ID, IDEMPOTENCY_KEY, Part("amount", MONEY, optional=True))
TRANSACTION = Group(pb.GetTransactionRequest, TRANSACTION_ID)
MAX_TIER = 32
MAX_REASON = 200

# The holder of SetHolderTier: a card (its number alone), a token or an account.
HOLDER_TIER = Group(
    pb.SetHolderTierRequest,
    OneOf(
        "holder",
        "set one of card, token or account",
        card=Group(pb.Card, PAN),
        token=Group(
            pb.SetHolderTierRequest,
            Field("token_key_id", *text(MAX_ID), optional=True),
            Field("token", REQUIRED, *text(MAX_ID, card_number_allowed=True), path="holder.token"),
        ),
        account=ACCOUNT,
    ),
    Field("tier", REQUIRED, *text(MAX_TIER)),
    Field("reason", REQUIRED, *text(MAX_REASON)),
)

FRAUD_REPORT = Group(pb.ReportFraudRequest, TRANSACTION_ID, Field("reason", REQUIRED, *text(MAX_REASON)))

MAX_VERSION = 64  # a bundle's and a model's versions are 16 hex digits
MODEL_PROMOTION = Group(
    pb.PromoteModelRequest,
    Field("policy_version", REQUIRED, *text(MAX_VERSION)),
    Field("model_version", REQUIRED, *text(MAX_VERSION)),
    Field("reason", REQUIRED, *text(MAX_REASON)),
)

ALERTS = Group(
    pb.ListAlertsRequest,
    Field("kind", *text(MAX_ID), optional=True),
    Field("merchant_id", *text(MAX_ID), optional=True),
    Field("page_size", Rule(f"value <= {MAX_PAGE}", f"must be at most {MAX_PAGE}"), optional=True),
    Field("page_token", *text(MAX_PAGE_TOKEN), optional=True),
)
