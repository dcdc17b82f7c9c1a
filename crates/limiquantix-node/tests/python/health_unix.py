#!/usr/bin/env python3
"""HealthCheck over the daemon's Unix socket with grpcio (gRPC C-core), twice.

1. Default channel options. C-core (grpcio >= 1.57) sends the %-encoded socket path as
   `:authority`; the HTTP/2 layer under the daemon (the `h2` crate) rejects that as a malformed
   authority and resets the stream with PROTOCOL_ERROR, so the call fails (INTERNAL or
   UNAVAILABLE, "RST_STREAM ... PROTOCOL_ERROR"). Recorded, not hidden: if a future h2 or grpcio
   makes it pass, this script says so.
2. `options=[("grpc.default_authority", "localhost")]`: the call succeeds. This is the setting
   every C-core client (Python, C++, Ruby) needs on our Unix socket.

No generated code: grpc's generic `unary_unary` with raw bytes. An empty HealthCheckRequest
encodes as zero bytes; the answer is decoded here (fields 1 healthy, 2 version, 3 hypervisor).

Usage: health_unix.py SOCKET_PATH. Prints one JSON object per attempt; exit status 0 when the
call with the option succeeded, 1 when it failed, 3 when grpcio is missing.
"""
import json
import sys

try:
    import grpc
except ImportError:
    print("grpcio is not installed (scripts/install-deps.sh installs it)", file=sys.stderr)
    sys.exit(3)

METHOD = "/limiquantix.node.v1.NodeDaemonService/HealthCheck"


def varint(data, i):
    """A protobuf varint at data[i:]: (value, next index)."""
    value, shift = 0, 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def decode_health(data):
    """The fields of a HealthCheckResponse this script reads."""
    names = {1: "healthy", 2: "version", 3: "hypervisor", 4: "hypervisor_version"}
    out, i = {}, 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
            if number == 1:
                out["healthy"] = bool(value)
        elif wire == 2:
            length, i = varint(data, i)
            if number in names:
                out[names[number]] = data[i:i + length].decode()
            i += length
        else:
            raise ValueError(f"unexpected wire type {wire} for field {number}")
    return out


def health_check(socket_path, options):
    """One HealthCheck on a fresh channel: a dict describing the outcome."""
    with grpc.insecure_channel(f"unix:{socket_path}", options=options) as channel:
        call = channel.unary_unary(METHOD)  # no serializers: bytes in, bytes out
        try:
            answer = call(b"", timeout=10)
        except grpc.RpcError as e:
            return {"ok": False, "code": e.code().name, "details": e.details()}
        return {"ok": True, **decode_health(answer)}


def main():
    socket_path = sys.argv[1]
    default = health_check(socket_path, [])
    print(json.dumps({"attempt": "default options", "grpcio": grpc.__version__, **default}))
    fixed = health_check(socket_path, [("grpc.default_authority", "localhost")])
    print(json.dumps({"attempt": "grpc.default_authority=localhost", **fixed}))
    return 0 if fixed["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
