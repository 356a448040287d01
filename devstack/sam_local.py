"""Data for `sam local invoke`/`start-api` against a moto server (scripts/sam-local-setup --aws).

`sam local` resolves a `!Ref` to a resource as the resource's logical id, so env.local.json
names the tables and the bus by their logical ids and this creates them under those names, from
template.yaml, with the demo data (devstack.demo) the sample events of events/ act on.
"""

from __future__ import annotations

from devstack.aws import local_session
from devstack.demo import DemoData
from devstack.provision import create_bus, create_tables
from devstack.template import load_template

SAM_LOCAL_TABLES = ("MessagesTable", "ProjectsTable", "BulkStateTable", "StopPaceTable", "AgeIndexTable")
SAM_LOCAL_BUS = "CancelBus"


def seed(aws_url: str) -> list[str]:
    """Create the tables and the bus if missing, and (re)write the demo data; the processing ids."""
    session = local_session()
    dynamodb = session.client("dynamodb", endpoint_url=aws_url)
    if not set(SAM_LOCAL_TABLES) <= set(dynamodb.list_tables()["TableNames"]):
        create_tables(dynamodb, {name: name for name in SAM_LOCAL_TABLES}, load_template())
    create_bus(session.client("events", endpoint_url=aws_url), SAM_LOCAL_BUS)
    return DemoData(dynamodb, lambda logical_id: logical_id).seed()
