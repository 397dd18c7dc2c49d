"""The Django cache backend: Django's Redis cache, confined to its own keys."""

import functools
import re

import redis
from django.core.cache.backends.redis import RedisCache

from core.redis import SyncPools, delete_by_prefix, make_sync_client
from core.redis_urls import is_sentinel_url

# OPTIONS that configure Django's client rather than the connection to Redis.
DJANGO_CLIENT_OPTIONS = {"serializer", "pool_class", "parser_class"}


class PrefixedRedisCache(RedisCache):
    """Django's Redis cache, but clear() deletes only keys under its KEY_PREFIX.

    Django's clear() runs FLUSHDB, which would wipe every other deployment (and test
    run) sharing the Redis server. The cache also lends its Redis server to scripts
    that must run there atomically (the login throttles), through `redis`.

    Its pools are core.redis's (`pool_class`), so LOCATION takes every form REDIS_URL
    does; a Sentinel URL, commas and all, is one location.
    """

    def __init__(self, server: str | list[str], params: dict) -> None:
        if isinstance(server, str) and is_sentinel_url(server):
            server = [server]
        with_pools = {"pool_class": SyncPools, **params.get("OPTIONS", {})}
        super().__init__(server, {**params, "OPTIONS": with_pools})
        # Django writes to the first server it is given; so do we.
        servers = re.split("[;,]", server) if isinstance(server, str) else server
        self.location = servers[0]
        options = params.get("OPTIONS", {})
        self.connection_options = {
            name: value
            for name, value in options.items()
            if name not in DJANGO_CLIENT_OPTIONS
        }

    @functools.cached_property
    def redis(self) -> redis.Redis:
        """A client of the cache's Redis server, for commands Django has no call for."""
        return make_sync_client(self.location, self.connection_options)

    def clear(self) -> bool:
        delete_by_prefix(self.redis, self.key_prefix)
        return True
