# SPDX-License-Identifier: Apache-2.0
"""The gRPC channel to containerd: namespace metadata, deadlines, error mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from attestor.errors import Conflict, Error, NotFound, UpstreamError

__all__ = ["LEASE_KEY", "Rpc", "translate"]

_NAMESPACE_KEY = "containerd-namespace"
#: Metadata key that attaches created resources to a lease (GC protection).
LEASE_KEY = "containerd-lease"


def translate(e: grpc.RpcError, what: str) -> Error:
    """Map a gRPC failure to our hierarchy; the caller raises it ``from e``."""
    code = e.code() if isinstance(e, grpc.Call) else None
    details = e.details() if isinstance(e, grpc.Call) else str(e)
    message = f"containerd {what}: {details}"
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return Conflict(message)
    name = code.name if code is not None else "UNKNOWN"
    return UpstreamError(message, detail={"grpc_status": name})


class Rpc:
    """A channel plus the namespace every call carries.

    Creating it does no I/O: gRPC connects on the first call.
    """

    def __init__(self, address: str, namespace: str, *, timeout: float) -> None:
        target = address if address.startswith("unix:") else "unix://" + address
        self.channel = grpc.insecure_channel(target)
        self.namespace = namespace
        self.timeout = timeout

    def metadata(self, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Call metadata: the namespace (containerd rejects calls without it)."""
        return [(_NAMESPACE_KEY, self.namespace), *extra]

    def unary(
        self,
        what: str,
        method: Callable[..., Any],
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
            return method(request, timeout=self.timeout, metadata=self.metadata(extra))
        except grpc.RpcError as e:
            raise translate(e, what) from e

    def stream(
        self,
        what: str,
        method: Callable[..., Any],
        request: Any,
        *,
        timeout: float | None,
    ) -> Iterator[Any]:
        """Iterate a server-streaming method, translating errors.

        Raises:
            NotFound: containerd answered NOT_FOUND.
            UpstreamError: any other failure.
        """
        call = method(request, timeout=timeout, metadata=self.metadata())
        try:
            yield from call
        except grpc.RpcError as e:
            raise translate(e, what) from e
        finally:
            call.cancel()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()
