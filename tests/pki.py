"""A throwaway certificate authority for the TLS tests: server and client certificates
with DNS, IP and URI (SPIFFE) names, expired ones, and PEM files on disk.

It is `switch tls init`'s (switch/cli/tls_init.py), so the tests issue certificates
with the code operators run: CA(name), .server(names, expired=...), .client(uri=...,
dns=..., common_name=..., expired=...), .issue(...) and .write(folder, name);
Issued.write(folder, name) writes name.pem and name.key (0600), replacing them (a
rotation) unless told replace=False.
"""

from __future__ import annotations

from switch.cli.tls_init import CA, Issued

__all__ = ["CA", "Issued"]
