"""One Logger, Metrics and Tracer per function, shared by every module.

Service name, metrics namespace and log level come from the POWERTOOLS_* environment the
template sets. In Lambda with tracing on, the Tracer patches botocore so every AWS call becomes
an X-Ray subsegment, and `capture_method` adds the service's own steps (the JWKS fetch among
them). It patches botocore alone: by default Powertools patches every library the X-Ray SDK knows
that is installed, which imports httpx (and sqlite3, http.client...) at the cold start of every
function, although only the first request of an HTTP container without CLERK_JWT_KEY uses httpx
(benchmarks/cold_start.py: the deployed cold start against its floor).

Where tracing is off (outside Lambda, `sam local`, POWERTOOLS_TRACE_DISABLED, which the
template's Tracing=PassThrough sets), Powertools would still import the X-Ray SDK, which builds a
botocore session of its own at import: about 75 ms, 40% of this function's cold start, for
nothing. There the Tracer gets a provider that does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _Untraced(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class _NoTracing(BaseProvider):
    # Whatever the Tracer names the subsegment, nothing is traced.
    @contextmanager
    def in_subsegment(self, *_args: Any, **_kwargs: Any) -> Iterator[BaseSegment]:
        yield _Untraced()

    @asynccontextmanager
    async def in_subsegment_async(self, *_args: Any, **_kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Untraced()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Sequence[str]) -> None: ...
    def patch_all(self) -> None: ...


logger = Logger()
metrics = Metrics()
# What the functions call over the network that X-Ray should see: AWS, through botocore.
TRACED_MODULES = ("botocore",)
tracer = (
    Tracer(provider=_NoTracing()) if Tracer._is_tracer_disabled() else Tracer(patch_modules=TRACED_MODULES)
)
