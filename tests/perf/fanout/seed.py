"""What a service target needs in its database: viewers' tokens, hosts' tokens.

Run by the tool as `python -m tests.perf.fanout.seed` with the target's own
environment (its database, its secret key), so that each target of a run gets its
own Django set-up and the tool itself never imports Django. It reads one JSON
request on stdin, {"viewers": N, "hosts": [NAME, ...]}, creates the benchmark user
and the hosts, and writes one JSON line: {"tokens": [N access tokens], "hosts":
{NAME: agent token}}.
"""

import json
import sys

BENCHMARK_USERNAME = "fanout-benchmark"


def seed(viewers: int, hosts: list[str]) -> dict:
    """Create the benchmark user (one access token per viewer) and the hosts."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    # A superuser sees every host (metrics.access), the local publisher's too.
    user = get_user_model().objects.create_user(
        username=BENCHMARK_USERNAME, is_superuser=True
    )
    tokens = [str(AccessToken.for_user(user)) for _ in range(viewers)]
    host_tokens = {}
    if hosts:
        from metrics.hosts import create_host

        for name in hosts:
            _, host_tokens[name] = create_host(name)
    return {"tokens": tokens, "hosts": host_tokens}


def main() -> None:
    request = json.loads(sys.stdin.read())
    result = seed(int(request["viewers"]), list(request.get("hosts") or []))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
