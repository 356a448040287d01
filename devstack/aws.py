"""AWS on 127.0.0.1: moto in server mode, in this process (function processes reach it through
AWS_ENDPOINT_URL), with Step Functions really executing state machines, and boto3 clients for it."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3

from devstack.constants import ACCOUNT, LOCAL_CREDENTIAL, REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient


def local_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL, aws_secret_access_key=LOCAL_CREDENTIAL, region_name=REGION
    )


class LocalAws:
    def __init__(self, host: str, port: int) -> None:
        # Imported here: moto's server loads every service it emulates, which `token` never needs.
        from moto.server import ThreadedMotoServer

        from devstack.events_calls import parse_each_path_once
        from devstack.server_calls import find_each_service_once
        from devstack.sqs_calls import keep_sqs_calls_short

        keep_sqs_calls_short()
        parse_each_path_once()
        find_each_service_once()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.url = f"http://{bound_host}:{bound_port}"
        self._configure({"stepfunctions": {"execute_state_machine": True}})
        self._session = local_session()

    def client(self, service: str) -> Any:
        """A client of any service, for callers that name it at run time (the tests)."""
        return self._session.client(service, endpoint_url=self.url)  # type: ignore[call-overload]

    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", endpoint_url=self.url)

    def events(self) -> EventBridgeClient:
        return self._session.client("events", endpoint_url=self.url)

    def sqs(self) -> SQSClient:
        return self._session.client("sqs", endpoint_url=self.url)

    def stepfunctions(self) -> SFNClient:
        return self._session.client("stepfunctions", endpoint_url=self.url)

    def queue_url(self, arn: str) -> str:
        """The URL of the queue with this ARN (moto's URLs are account/name under its endpoint)."""
        return f"{self.url}/{ACCOUNT}/{arn.rsplit(':', 1)[-1]}"

    def stop(self) -> None:
        self._server.stop()

    def _configure(self, config: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback moto
            f"{self.url}/moto-api/config", data=json.dumps(config).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback moto
            response.read()
