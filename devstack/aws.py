"""AWS on 127.0.0.1: moto in server mode, in this process (function processes reach it through
AWS_ENDPOINT_URL), with Step Functions really executing state machines, and boto3 clients for it."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import boto3

from devstack.constants import ACCOUNT, LOCAL_CREDENTIAL, REGION


def local_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL, aws_secret_access_key=LOCAL_CREDENTIAL, region_name=REGION
    )


class LocalAws:
    def __init__(self, host: str, port: int) -> None:
        # Imported here: moto's server loads every service it emulates, which `token` never needs.
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.url = f"http://{bound_host}:{bound_port}"
        self._configure({"stepfunctions": {"execute_state_machine": True}})
        self._session = local_session()

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.url)  # type: ignore[call-overload]

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
