"""Call any method of a gRPC server that serves reflection, with JSON in and out: no .proto, no codegen.

    python examples/reflection_call.py 127.0.0.1:50051 rlm.v1.RLMService/ListContexts '{}' --key rlm_...
    python examples/reflection_call.py 127.0.0.1:50051 rlm.v1.RLMService/Execute \
        '{"context": {"text": "hello"}, "code": "print(len(context))"}' --key rlm_...

What grpcurl does, for unary and server-streaming methods (each reply is printed as one JSON line):
the server's reflection service describes the method, the message classes are built from that, the
request is parsed from JSON and sent with `authorization: Bearer <key>`.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("method", help="package.Service/Method")
    parser.add_argument("request", help="the request as JSON")
    parser.add_argument("--key", default="", help="API key (sent as authorization: Bearer KEY)")
    args = parser.parse_args()
    service_name, _, method_name = args.method.partition("/")
    with grpc.insecure_channel(args.address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.Parse(args.request, request_class())
        path = f"/{service_name}/{method_name}"
        call = (channel.unary_stream if method.server_streaming else channel.unary_unary)(
            path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        metadata = (("authorization", f"Bearer {args.key}"),) if args.key else ()
        try:
            replies = call(request, metadata=metadata, timeout=600)
            for reply in replies if method.server_streaming else [replies]:
                print(json_format.MessageToJson(reply, indent=None))
        except grpc.RpcError as exc:
            print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
