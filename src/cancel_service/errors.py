"""Domain errors: raised where the problem is found, mapped to HTTP in one place (handlers/cancel_http)."""

from __future__ import annotations


class CancelServiceError(Exception):
    """Base of every error this service raises on purpose."""


class InvalidRequest(CancelServiceError):
    """The request body is not what the contract asks for."""


class PayloadTooLarge(CancelServiceError):
    """The request body is over the size limit."""


class UnsupportedMediaType(CancelServiceError):
    """The request body is not declared as JSON."""


class AuthenticationFailed(CancelServiceError):
    """No acceptable session token. `reason` is a short label for logs and metrics, never shown."""

    def __init__(self, reason: str, *, token_sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_sent = token_sent


class OriginForbidden(CancelServiceError):
    """A cookie-authenticated request came from an origin that is not authorized."""


class ProjectNotFound(CancelServiceError):
    """The project does not exist, or the caller may not touch it (deliberately indistinguishable)."""


class DependencyUnavailable(CancelServiceError):
    """An AWS service or Clerk's JWKS failed; the work done so far is kept and a retry is safe.

    `cancelled_ids` lists the messages this call did cancel before the failure, and
    `already_finished_ids` those it found finished (neither is to be retried).
    """

    def __init__(
        self,
        dependency: str,
        *,
        cancelled_ids: tuple[str, ...] = (),
        already_finished_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{dependency} unavailable")
        self.dependency = dependency
        self.cancelled_ids = cancelled_ids
        self.already_finished_ids = already_finished_ids


class StateUnavailable(DependencyUnavailable):
    """The bulk state table failed: the invocation fails for Lambda to retry it (the bulk does
    not give up over its own records)."""

    def __init__(self) -> None:
        super().__init__("dynamodb")


class BulkIdTaken(CancelServiceError):
    """The bulkId is held by another request."""


class LeaseLost(CancelServiceError):
    """Another invocation holds the bulk now: this one stops without writing anything more."""


class InvalidBulkRequest(CancelServiceError):
    """A bulk cancel that can never succeed as sent (a position it may not carry): refused and
    logged, never retried."""


class StopRefused(CancelServiceError):
    """A stop that can never succeed as asked (Step Functions refuses its ARN or its cause):
    logged and counted as rejected, never retried."""


class NotAnAgentExecution(StopRefused):
    """A stop was asked for an execution of another state machine than the agent's: refused."""


class OutOfTime(CancelServiceError):
    """The invocation has no time left for another StopExecution attempt (and the wait after it):
    the stop goes back to its queue untried."""


class BulkIdInUse(InvalidBulkRequest):
    """A bulk request whose `bulkId` is known with another selection: refused, never retried."""
