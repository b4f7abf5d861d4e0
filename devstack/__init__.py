"""The local stack: a private PostgreSQL cluster and a signature-checking S3 server, for `make dev` and the tests."""
