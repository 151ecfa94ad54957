#!/usr/bin/env python3
"""nhigw-healthcheck [URL]: exit 0 when URL answers 200, 1 otherwise (Docker HEALTHCHECK).

URL defaults to $NHIGW_HEALTH_URL, then http://127.0.0.1:8066/healthz (the gateway).
The agent serves HTTPS with its own self-signed certificate on loopback: as HIS code
does, the check does not verify it. Standard library only, so it runs in any image
that has Python, without curl or wget.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("NHIGW_HEALTH_URL", "http://127.0.0.1:8066/healthz")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as r:  # noqa: S310 (the URL is the operator's)
            ok = r.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"nhigw-healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
