"""Data for `sam local invoke`/`start-api` against a moto server (scripts/sam-local-setup --aws).

`sam local` resolves a `!Ref` to a resource as the resource's logical id, so env.local.json
names the tables and the bus by their logical ids and this creates them under those names, from
template.yaml, with the demo project the sample events of events/ act on.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from devstack.sample_events import DEMO_PROJECT, DEMO_USER
from devstack.template import create_tables, load_template

SAM_LOCAL_NAMES = {"MessagesTable": "MessagesTable", "ProjectsTable": "ProjectsTable"}
SAM_LOCAL_BUS = "CancelBus"
DEMO_MESSAGES = (("k58xyz789ghi012", "conv_a"), ("k59abc456def789", "conv_b"))


def seed(aws_url: str, region: str = "us-east-1") -> list[str]:
    """Create the tables and the bus if missing, and (re)set the demo messages to processing."""
    # moto accepts any credentials; these keep a developer's real ones out of the call.
    session = boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
        region_name=region,
    )
    dynamodb: Any = session.client("dynamodb", endpoint_url=aws_url)
    events: Any = session.client("events", endpoint_url=aws_url)
    existing = set(dynamodb.list_tables()["TableNames"])
    if not set(SAM_LOCAL_NAMES.values()) <= existing:
        create_tables(dynamodb, SAM_LOCAL_NAMES, load_template())
    try:
        events.create_event_bus(Name=SAM_LOCAL_BUS)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    dynamodb.put_item(
        TableName=SAM_LOCAL_NAMES["ProjectsTable"],
        Item={"id": {"S": DEMO_PROJECT}, "ownerId": {"S": DEMO_USER}},
    )
    for message_id, conversation_id in DEMO_MESSAGES:
        dynamodb.put_item(
            TableName=SAM_LOCAL_NAMES["MessagesTable"],
            Item={
                "id": {"S": message_id},
                "projectId": {"S": DEMO_PROJECT},
                "conversationId": {"S": conversation_id},
                "status": {"S": "processing"},
                "createdAt": {"S": "2026-11-24T12:00:00.000Z"},
                "updatedAt": {"S": "2026-11-24T12:00:00.000Z"},
            },
        )
    return [message_id for message_id, _ in DEMO_MESSAGES]
