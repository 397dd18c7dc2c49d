"""What a service target needs in its database: viewers' tokens, hosts' tokens.

Run by the tool as `python -m tests.perf.fanout.seed` with the target's own
environment (its database, its secret key), so that each target of a run gets its
own Django set-up and the tool itself never imports Django. It reads one JSON
request on stdin, {"viewers": N, "hosts": [NAME, ...], "grant_sets": [[NAME, ...],
...]}, creates the hosts and the viewers' users, and writes one JSON line:
{"tokens": [N access tokens], "hosts": {NAME: agent token}}.

Without grant sets every viewer is the one benchmark user, a superuser (it sees
every host, the local publisher's too). With S grant sets
(--fleet), user k (not a superuser) is granted the hosts of set k, and viewer i
is user i mod S.
"""

import json
import sys

BENCHMARK_USERNAME = "fanout-benchmark"


def seed(viewers: int, hosts: list[str], grant_sets: list[list[str]]) -> dict:
    """Create the hosts and the users (one access token per viewer), each user
    granted its set's hosts if there are grant sets."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    host_tokens = {}
    created = {}
    if hosts:
        from metrics.hosts import create_host

        for name in hosts:
            created[name], host_tokens[name] = create_host(name)
    users = get_user_model().objects
    if grant_sets:
        viewers_of = []
        for index, names in enumerate(grant_sets):
            user = users.create_user(username=f"{BENCHMARK_USERNAME}-{index:02d}")
            user.visible_hosts.add(*(created[name] for name in names))
            viewers_of.append(user)
    else:
        # A superuser sees every host (metrics.access), the local publisher's too.
        viewers_of = [users.create_user(username=BENCHMARK_USERNAME, is_superuser=True)]
    tokens = [
        str(AccessToken.for_user(viewers_of[index % len(viewers_of)]))
        for index in range(viewers)
    ]
    return {"tokens": tokens, "hosts": host_tokens}


def main() -> None:
    request = json.loads(sys.stdin.read())
    result = seed(
        int(request["viewers"]),
        list(request.get("hosts") or []),
        [list(names) for names in request.get("grant_sets") or []],
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
