"""Batch certificates: an account's X.509 certificates (and private keys), installed on its pools' nodes."""
