"""End-to-end tests: a real switch on port 0, real gRPC channels, on both store sets."""
