# SPDX-License-Identifier: Apache-2.0
"""Calls to containerd: namespace metadata, deadlines, error mapping.

The transport is :mod:`agent.containerd._grpc`; the methods are described by
the generated protobuf modules (their service descriptors give each method's
path and response type), so no grpcio stub is imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from agent.containerd._grpc import Call, Channel, RpcError, StatusCode
from attestor.errors import Conflict, Error, NotFound, UpstreamError

__all__ = ["LEASE_KEY", "Method", "Rpc", "method", "translate", "undecodable"]

_NAMESPACE_KEY = "containerd-namespace"
#: Metadata key that attaches created resources to a lease (GC protection).
LEASE_KEY = "containerd-lease"


@dataclass(frozen=True)
class Method:
    """One RPC: its HTTP/2 path and the message class it answers with."""

    path: str
    response: Any


def method(file: FileDescriptor, service: str, name: str) -> Method:
    """The method ``service.name`` declared in a generated module's ``DESCRIPTOR``.

    Raises:
        KeyError: the file declares no such service or method (a programming error).
    """
    svc = file.services_by_name[service]
    return Method(
        f"/{svc.full_name}/{name}", GetMessageClass(svc.methods_by_name[name].output_type)
    )


def undecodable(e: DecodeError, what: str) -> UpstreamError:
    """An answer that does not parse as its message type (grpcio: INTERNAL)."""
    return UpstreamError(
        f"containerd {what}: undecodable answer: {e}",
        detail={"grpc_status": StatusCode.INTERNAL.name},
    )


def translate(e: RpcError, what: str) -> Error:
    """Map a gRPC failure to our hierarchy; the caller raises it ``from e``."""
    message = f"containerd {what}: {e.details}"
    if e.code == StatusCode.NOT_FOUND:
        return NotFound(message)
    if e.code == StatusCode.ALREADY_EXISTS:
        return Conflict(message)
    return UpstreamError(message, detail={"grpc_status": e.code.name})


class Rpc:
    """A containerd socket plus the namespace every call carries.

    Creating it does no I/O: the first call connects.
    """

    def __init__(self, address: str, namespace: str, *, timeout: float) -> None:
        self.channel = Channel(address.removeprefix("unix://").removeprefix("unix:"))
        self.namespace = namespace
        self.timeout = timeout

    def metadata(self, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Call metadata: the namespace (containerd rejects calls without it)."""
        return [(_NAMESPACE_KEY, self.namespace), *extra]

    def call(
        self,
        rpc: Method,
        request: Any,
        *,
        timeout: float | None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Call:
        """An unstarted call (iterating it connects); messages come back as bytes."""
        return self.channel.call(
            rpc.path, request.SerializeToString(), metadata=self.metadata(extra), timeout=timeout
        )

    def unary(
        self,
        what: str,
        rpc: Method,
        request: Any,
        *,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Any:
        """Call a unary method.

        Raises:
            NotFound: containerd answered NOT_FOUND.
            Conflict: containerd answered ALREADY_EXISTS.
            UpstreamError: any other failure, including an unreachable socket.
        """
        try:
            answers = list(self.call(rpc, request, timeout=self.timeout, extra=extra))
        except RpcError as e:
            raise translate(e, what) from e
        if len(answers) != 1:
            raise UpstreamError(
                f"containerd {what}: {len(answers)} answers to a unary call",
                detail={"grpc_status": StatusCode.INTERNAL.name},
            )
        try:
            return rpc.response.FromString(answers[0])
        except DecodeError as e:
            raise undecodable(e, what) from e

    def stream(
        self,
        what: str,
        rpc: Method,
        request: Any,
        *,
        timeout: float | None,
    ) -> Iterator[Any]:
        """Iterate a server-streaming method, translating errors.

        Raises:
            NotFound: containerd answered NOT_FOUND.
            UpstreamError: any other failure.
        """
        call = self.call(rpc, request, timeout=timeout)
        try:
            for raw in call:
                yield rpc.response.FromString(raw)
        except RpcError as e:
            raise translate(e, what) from e
        except DecodeError as e:
            raise undecodable(e, what) from e
        finally:
            call.cancel()

    def close(self) -> None:
        """Close the idle connections."""
        self.channel.close()
