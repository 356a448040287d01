"""The local stack's moto server, finding the service of each host once.

For every request, moto's server maps the request's host (`dynamodb.us-east-1.amazonaws.com`,
built from the request's signature) to the service that answers it: it lists its own package
directory, checking each entry on disk, then tries every service's URL patterns in turn. That
took about a millisecond of every call of the stack, in the one process that serves every
queue, table, bus and state machine, and under the lock that every request takes to find its
service. The answer for a host never changes while the server runs, so here it is kept per host.
"""

from __future__ import annotations

import functools

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

# The hosts of every service the stack calls, in its one region, with room to spare.
HOSTS_KEPT = 256


def find_each_service_once() -> None:
    """Keep moto's answer for each host, in this process, before its server starts (once: a second
    stack in the same process keeps the one cache)."""
    find = DomainDispatcherApplication.get_backend_for_host
    if not hasattr(find, "cache_info"):
        # Keyed by (application, host): each server's application keeps its own answers.
        DomainDispatcherApplication.get_backend_for_host = functools.lru_cache(maxsize=HOSTS_KEPT)(find)  # type: ignore[method-assign]
