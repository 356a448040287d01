"""POST /api/messages/cancel: the user's Stop button (API Gateway HTTP API, payload 2.0).

The handler only turns HTTP into a call of the cancel core and the outcome back into HTTP.
Every error of the contract is raised once where it is found and mapped to its response here,
in `_error_response`; nothing else in the service knows about status codes.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from cancel_service.adapters.clerk import presented_token
from cancel_service.config import clerk_config
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
from cancel_service.runtime import cancel_service, session_verifier

MAX_BODY_BYTES = 16 * 1024
RETRY_AFTER_SECONDS = "2"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)

app = APIGatewayHttpResolver()


@dataclass(frozen=True, slots=True)
class CancelMessagesBody:
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
    clerk = clerk_config()
    token = presented_token(event.headers, event.cookies or [], clerk.publishable_key)
    if token is None:
        raise AuthenticationFailed("missing_token", token_sent=False)
    caller = session_verifier().verify(token.value)
    # A cookie rides along with any cross-site request: only the app's own origins may use it.
    origin = event.headers.get("origin")
    if token.from_cookie and origin and clerk.authorized_parties and origin not in clerk.authorized_parties:
        raise OriginForbidden(origin)
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


@app.exception_handler(CancelServiceError)  # type: ignore[untyped-decorator]
def _error_response(error: CancelServiceError) -> Response[str]:
    if isinstance(error, DependencyUnavailable):
        _count("DependencyFailures", "dependency", error.dependency)
        logger.exception(
            "dependency unavailable",
            extra={"dependency": error.dependency, "kept_cancelled": error.cancelled_ids},
        )
        return _error(
            503,
            "unavailable",
            "A service this request needs is unavailable; please retry.",
            {"Retry-After": RETRY_AFTER_SECONDS},
        )
    if isinstance(error, AuthenticationFailed):
        _count("AuthFailures", "reason", error.reason)
        logger.info("request refused: not authenticated", extra={"reason": error.reason})
        challenge = 'Bearer error="invalid_token"' if error.token_sent else "Bearer"
        return _error(
            401, "unauthenticated", "A valid session token is required.", {"WWW-Authenticate": challenge}
        )
    if isinstance(error, OriginForbidden):
        _count("AuthFailures", "reason", "forbidden_origin")
        logger.info("request refused: cookie from a foreign origin", extra={"origin": str(error)})
        return _error(403, "forbidden", "This origin may not use the session cookie.")
    status, code, message = _CLIENT_ERRORS[type(error)]
    logger.info("request refused", extra={"status": status, "code": code})
    return _error(status, code, str(error) if isinstance(error, InvalidRequest) else message)


_CLIENT_ERRORS: dict[type[CancelServiceError], tuple[int, str, str]] = {
    InvalidRequest: (400, "invalid_request", ""),
    ProjectNotFound: (404, "project_not_found", "No such project."),
    PayloadTooLarge: (413, "payload_too_large", "The request body is over 16 KiB."),
    UnsupportedMediaType: (415, "unsupported_media_type", "The request body must be application/json."),
}


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
