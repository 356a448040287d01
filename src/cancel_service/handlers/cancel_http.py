"""POST /api/messages/cancel: the user's Stop button (API Gateway HTTP API, payload 2.0).

The handler only turns HTTP into a call of the cancel core and the outcome back into HTTP.
Every error of the contract is raised once where it is found and mapped to its answer here, in
one table (`_ANSWERS`); nothing else in the service knows about status codes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from cancel_service.errors import (
    AuthenticationFailed,
    CancelServiceError,
    DependencyUnavailable,
    InvalidRequest,
    OriginForbidden,
    PayloadTooLarge,
    ProjectNotFound,
    UnsupportedMediaType,
)
from cancel_service.models import PROJECT_ID_PATTERN
from cancel_service.observability import logger, metrics, tracer
from cancel_service.runtime import authenticator, cancel_service

MAX_BODY_BYTES = 16 * 1024
RETRY_AFTER_SECONDS = "2"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)

app = APIGatewayHttpResolver()


class CancelMessagesBody(NamedTuple):
    project_id: str

    @classmethod
    def from_json(cls, text: str) -> CancelMessagesBody:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        project_id = data.get("projectId")
        if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
            raise InvalidRequest("projectId must be 1 to 128 letters, digits, '_' or '-'.")
        return cls(project_id)


def _body_text(event: APIGatewayProxyEventV2) -> str:
    media_type = (event.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType
    raw = event.body or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except ValueError:  # bad base64 (binascii.Error), non-ASCII base64 text, a lone surrogate
        raise InvalidRequest("The request body is not valid JSON.") from None
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None


def _request_id(event: APIGatewayProxyEventV2) -> str:
    """API Gateway's id of this request; Lambda's when an event lacks it (a direct invoke)."""
    request_id = (event.get("requestContext") or {}).get("requestId")
    return request_id if isinstance(request_id, str) and request_id else app.lambda_context.aws_request_id


@app.post("/api/messages/cancel")
def cancel_messages() -> Response[str]:
    # Every request counts, refused ones included: the baseline for AuthFailures and friends.
    metrics.add_metric(name="CancelRequests", unit=MetricUnit.Count, value=1)
    event = app.current_event
    text = _body_text(event)
    caller = authenticator().caller(event.headers, event.cookies or [])
    logger.append_keys(user_id=caller.user_id)
    body = CancelMessagesBody.from_json(text)
    logger.append_keys(project_id=body.project_id)

    result = cancel_service().cancel_project_for(caller, body.project_id, _request_id(event))
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=len(result.cancelled_ids))
    logger.info("cancel handled", extra={"cancelled_count": len(result.cancelled_ids)})
    if not result.cancelled:
        return _json(200, {"success": True, "cancelled": False})
    return _json(200, {"success": True, "cancelled": True, "messageIds": list(result.cancelled_ids)})


# --- responses -------------------------------------------------------------------------------------


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(payload, separators=(",", ":")),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return _json(status, {"success": False, "error": {"code": code, "message": message}}, headers)


def _count(name: str, dimension: str, value: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name=dimension, value=value)


class _Answer(NamedTuple):
    """The contract's answer to one error: status, code and message (None: the error's own
    words, which say what was wrong), extra headers; its log line and details (by default the
    status and code); and the failure metric it counts, if any."""

    status: int
    code: str
    message: str | None
    headers: Callable[[Any], dict[str, str]] | None = None
    log: str = "request refused"
    details: Callable[[Any], dict[str, Any]] | None = None
    counted: Callable[[Any], None] | None = None


# WWW-Authenticate: a token that was sent and refused, or none sent at all.
_CHALLENGES = {True: 'Bearer error="invalid_token"', False: "Bearer"}

_ANSWERS: dict[type[CancelServiceError], _Answer] = {
    InvalidRequest: _Answer(400, "invalid_request", None),
    AuthenticationFailed: _Answer(
        401,
        "unauthenticated",
        "A valid session token is required.",
        headers=lambda error: {"WWW-Authenticate": _CHALLENGES[error.token_sent]},
        log="request refused: not authenticated",
        details=lambda error: {"reason": error.reason},
        counted=lambda error: _count("AuthFailures", "reason", error.reason),
    ),
    OriginForbidden: _Answer(
        403,
        "forbidden",
        "This origin may not use the session cookie.",
        log="request refused: cookie from a foreign origin",
        details=lambda error: {"origin": str(error)},
        counted=lambda _error: _count("AuthFailures", "reason", "forbidden_origin"),
    ),
    ProjectNotFound: _Answer(404, "project_not_found", "No such project."),
    PayloadTooLarge: _Answer(413, "payload_too_large", "The request body is over 16 KiB."),
    UnsupportedMediaType: _Answer(
        415, "unsupported_media_type", "The request body must be application/json."
    ),
    DependencyUnavailable: _Answer(
        503,
        "unavailable",
        "A service this request needs is unavailable; please retry.",
        headers=lambda _error: {"Retry-After": RETRY_AFTER_SECONDS},
        log="dependency unavailable",
        details=lambda error: {"dependency": error.dependency, "kept_cancelled": error.cancelled_ids},
        counted=lambda error: _count("DependencyFailures", "dependency", error.dependency),
    ),
}


@app.exception_handler(CancelServiceError)  # type: ignore[untyped-decorator]
def _error_response(error: CancelServiceError) -> Response[str]:
    answer = _ANSWERS[type(error)]
    if answer.counted is not None:
        answer.counted(error)
    details = answer.details(error) if answer.details else {"status": answer.status, "code": answer.code}
    # A stack trace for a failure of ours (5xx) only; a refused request is an info line.
    log = logger.exception if answer.status >= 500 else logger.info
    log(answer.log, extra=details)
    message = str(error) if answer.message is None else answer.message
    return _error(answer.status, answer.code, message, answer.headers(error) if answer.headers else None)


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(_exception: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return _error(500, "internal_error", "Something went wrong on our side.")


@app.not_found
def _no_route(_exception: Exception) -> Response[str]:
    return _error(404, "not_found", "No such route.")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
