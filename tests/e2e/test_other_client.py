"""A client that shares no code with the switch: grpclib (pure Python, not grpcio),
generated from protos/ alone at test time, run in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SwitchFactory
from tests.e2e.support import serve

REPO = Path(__file__).resolve().parents[2]

CLIENT = """
import asyncio
import importlib.util
import json
import sys

from google.rpc import error_details_pb2  # registers BadRequest for grpclib's status details codec
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

import switch.v1.switch_pb2 as pb
from switch.v1.switch_grpc import SwitchStub


def status(transaction):
    return pb.TransactionStatus.Name(transaction.status)


async def main(port):
    seen = {
        "pb_module": pb.__file__,
        "repo_switch_importable": importlib.util.find_spec("switch.server") is not None,
        "grpcio_loaded": "grpc" in sys.modules,
    }
    async with Channel("127.0.0.1", port) as channel:
        stub = SwitchStub(channel)
        usd = lambda n: pb.Money(minor_units=n, currency="USD")
        request = pb.AuthorizeRequest(
            idempotency_key="grpclib-auth-1",
            merchant_id="m_grpclib",
            amount=usd(1000),
            card=pb.Card(pan="4111111111111111", expiry_month=12, expiry_year=2099),
        )
        first = await stub.Authorize(request)
        again = await stub.Authorize(request)
        seen["authorize"] = {
            "decision": pb.Decision.Name(first.decision),
            "code": first.response_code,
            "route": first.route,
            "transaction_id": first.transaction_id,
            "replayed": first.replayed,
            "auth_code_length": len(first.authorization_code),
        }
        seen["replay"] = {"transaction_id": again.transaction_id, "replayed": again.replayed}
        tx = first.transaction_id

        capture = await stub.Capture(
            pb.CaptureRequest(transaction_id=tx, amount=usd(600), idempotency_key="grpclib-cap-1")
        )
        seen["capture"] = {"status": status(capture), "captured": capture.captured.minor_units}
        part = await stub.Refund(pb.RefundRequest(transaction_id=tx, amount=usd(200), idempotency_key="grpclib-ref-1"))
        rest = await stub.Refund(pb.RefundRequest(transaction_id=tx, amount=usd(400), idempotency_key="grpclib-ref-2"))
        seen["refunds"] = [
            {"status": status(part), "refunded": part.refunded.minor_units},
            {"status": status(rest), "refunded": rest.refunded.minor_units},
        ]

        other = await stub.Authorize(
            pb.AuthorizeRequest(
                idempotency_key="grpclib-auth-2",
                merchant_id="m_grpclib",
                amount=usd(500),
                card=pb.Card(pan="5555555555554444", expiry_month=12, expiry_year=2099),
            )
        )
        voided = await stub.Void(pb.VoidRequest(transaction_id=other.transaction_id, idempotency_key="grpclib-void-1"))
        seen["void"] = {"status": status(voided)}

        got_first = await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx))
        got_other = await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=other.transaction_id))
        seen["get"] = {
            "first": {
                "status": status(got_first),
                "authorized": got_first.authorized.minor_units,
                "captured": got_first.captured.minor_units,
                "refunded": got_first.refunded.minor_units,
                "masked": got_first.masked_instrument,
                "merchant": got_first.merchant_id,
            },
            "other": {"status": status(got_other), "masked": got_other.masked_instrument},
        }

        try:
            await stub.Capture(pb.CaptureRequest(transaction_id=other.transaction_id, idempotency_key="grpclib-cap-2"))
            seen["capture_voided"] = "succeeded"
        except GRPCError as error:
            seen["capture_voided"] = error.status.name

        bad = pb.AuthorizeRequest()
        bad.CopyFrom(request)
        bad.idempotency_key = "grpclib-bad-1"
        bad.card.pan = "4111111111111112"
        try:
            await stub.Authorize(bad)
            seen["invalid"] = "succeeded"
        except GRPCError as error:
            fields = [
                violation.field
                for detail in (error.details or [])
                if isinstance(detail, error_details_pb2.BadRequest)
                for violation in detail.field_violations
            ]
            seen["invalid"] = {"status": error.status.name, "fields": fields}
    print(json.dumps(seen))


asyncio.run(main(int(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generates switch_pb2 and a grpclib stub from protos/ into a fresh folder."""
    out = tmp_path_factory.mktemp("grpclib_client")
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    assert plugin.exists(), plugin
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iprotos",
            f"-I{include}",
            f"--plugin=protoc-gen-grpclib_python={plugin}",
            f"--python_out={out}",
            f"--grpclib_python_out={out}",
            "protos/switch/v1/switch.proto",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    for package in (out / "switch", out / "switch" / "v1"):
        (package / "__init__.py").write_text("")
    assert (out / "switch" / "v1" / "switch_grpc.py").exists()
    (out / "client.py").write_text(CLIENT)
    return out


async def _run_client(folder: Path, port: int) -> dict[str, Any]:
    # -S skips site, and with it the .pth hook of the repo's editable install: the client
    # sees the generated modules and the third-party libraries, never the switch's code.
    libraries = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *sorted(libraries)])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-S",
        "-P",
        str(folder / "client.py"),
        str(port),
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


async def test_grpclib_client_runs_a_whole_lifecycle(
    store_set: str, switch_factory: SwitchFactory, generated: Path
) -> None:
    async with serve(switch_factory, store_set) as switch:
        seen = await _run_client(generated, switch.running.port)

    assert seen["pb_module"].startswith(str(generated))
    assert not seen["repo_switch_importable"]
    assert not seen["grpcio_loaded"]

    authorize = seen["authorize"]
    assert authorize["decision"] == "DECISION_APPROVED"
    assert authorize["code"] == "00"
    assert authorize["route"] == "card"
    assert authorize["transaction_id"].startswith("tx_")
    assert authorize["replayed"] is False
    assert authorize["auth_code_length"] == 6
    assert seen["replay"] == {"transaction_id": authorize["transaction_id"], "replayed": True}

    assert seen["capture"] == {"status": "TRANSACTION_STATUS_CAPTURED", "captured": 600}
    assert seen["refunds"] == [
        {"status": "TRANSACTION_STATUS_PARTIALLY_REFUNDED", "refunded": 200},
        {"status": "TRANSACTION_STATUS_REFUNDED", "refunded": 600},
    ]
    assert seen["void"] == {"status": "TRANSACTION_STATUS_VOIDED"}
    assert seen["get"] == {
        "first": {
            "status": "TRANSACTION_STATUS_REFUNDED",
            "authorized": 1000,
            "captured": 600,
            "refunded": 600,
            "masked": "411111******1111",
            "merchant": "m_grpclib",
        },
        "other": {"status": "TRANSACTION_STATUS_VOIDED", "masked": "555555******4444"},
    }
    assert seen["capture_voided"] == "FAILED_PRECONDITION"
    assert seen["invalid"] == {"status": "INVALID_ARGUMENT", "fields": ["source.card.pan"]}
