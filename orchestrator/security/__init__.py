"""Hardening past Docker's defaults: the seccomp profile and the host checks."""
