"""Status codes and errors as PI reports them.

A P4RTError carries a google.rpc code and a message. A failed update inside a Write batch
becomes a p4.v1.Error; the whole Write then fails with UNKNOWN and one p4.v1.Error per
update (OK ones included) packed in the grpc-status-details-bin trailer, as PI does.
"""
from __future__ import annotations

from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
import grpc
from p4.v1 import p4runtime_pb2

from p4schema import InvalidP4Info, SchemaError

OK = code_pb2.OK
CANCELLED = code_pb2.CANCELLED
UNKNOWN = code_pb2.UNKNOWN
INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
NOT_FOUND = code_pb2.NOT_FOUND
ALREADY_EXISTS = code_pb2.ALREADY_EXISTS
PERMISSION_DENIED = code_pb2.PERMISSION_DENIED
RESOURCE_EXHAUSTED = code_pb2.RESOURCE_EXHAUSTED
FAILED_PRECONDITION = code_pb2.FAILED_PRECONDITION
OUT_OF_RANGE = code_pb2.OUT_OF_RANGE
UNIMPLEMENTED = code_pb2.UNIMPLEMENTED
INTERNAL = code_pb2.INTERNAL

# PI tags every per-update error with this space (its BMv2 target's name).
ERROR_SPACE = "ALL-sswitch-p4org"

_GRPC_CODES = {c.value[0]: c for c in grpc.StatusCode}


def code_name(code: int) -> str:
    return code_pb2.Code.Name(code) if code in code_pb2.Code.values() else str(code)


def grpc_code(code: int) -> grpc.StatusCode:
    return _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)


class P4RTError(Exception):
    """An error with a google.rpc code, reported to the client as is."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{code_name(self.code)}: {self.message}"


def invalid_id(kind: str, p4_id: int) -> P4RTError:
    # PI answers any unknown or wrongly-typed P4 id with INVALID_ARGUMENT "Invalid P4 id".
    return P4RTError(INVALID_ARGUMENT, f"Invalid P4 id: {p4_id} is not a {kind} id")


def from_schema_error(exc: SchemaError) -> P4RTError:
    """The status PI gives for a p4schema error: a P4Info it cannot import is UNKNOWN; a
    value too wide for its field (or a name the P4Info lacks) is INVALID_ARGUMENT."""
    if isinstance(exc, InvalidP4Info):
        return P4RTError(UNKNOWN, f"Error when importing p4info: {exc}")
    return P4RTError(INVALID_ARGUMENT, str(exc))


def write_error_status(errors: list[tuple[int, str]]) -> status_pb2.Status:
    """google.rpc.Status for a batch: UNKNOWN with one p4.v1.Error per update."""
    status = status_pb2.Status(code=UNKNOWN)
    failed = 0
    details = status.details
    ok_any = any_pb2.Any()
    ok_any.Pack(p4runtime_pb2.Error(canonical_code=OK))
    for code, message in errors:
        if code == OK:
            details.append(ok_any)
            continue
        failed += 1
        any_msg = details.add()
        any_msg.Pack(p4runtime_pb2.Error(canonical_code=code, message=message, space=ERROR_SPACE))
    first = next(m for c, m in errors if c != OK)
    status.message = (f"{failed} of {len(errors)} updates failed; first: {first}")
    return status


def simple_status(code: int, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message)


def abort_context(context: grpc.ServicerContext, status: status_pb2.Status) -> None:
    """Set a failed status with binary details on a unary handler's context."""
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.set_code(grpc_code(status.code))
    context.set_details(status.message)
