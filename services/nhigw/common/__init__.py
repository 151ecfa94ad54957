"""Small helpers shared by every service: logging with masking, at-rest encryption, TLS, HTTP glue."""
