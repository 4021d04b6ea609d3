"""The runtime that runs inside a sandbox container: a persistent REPL driven by the host over gRPC.

It depends on the standard library, grpcio, protobuf and the generated `rlm_proto` stubs only; it never
imports the orchestrator. It polices nothing: every limit is enforced by the host and the kernel.
"""

__version__ = "0.1.0"
