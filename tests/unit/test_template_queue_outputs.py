"""The stack names every queue in its outputs (`<Queue>Url`): `cancel-service status --stack`
and `redrive --stack` find the lanes and the dead letters there, whatever lanes the template has."""

from __future__ import annotations

from typing import Any

from devstack.template import resources_of_type


def test_every_queue_is_an_output_ending_in_queue_url(template: dict[str, Any]) -> None:
    queues = set(resources_of_type(template, "AWS::SQS::Queue"))
    outputs = {
        key: output["Value"] for key, output in template["Outputs"].items() if key.endswith("QueueUrl")
    }

    assert {value["Ref"] for value in outputs.values()} == queues
    assert all(key == f"{value['Ref']}Url" for key, value in outputs.items())
