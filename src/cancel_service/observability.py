"""One Logger, Metrics and Tracer per function, shared by every module.

Service name, metrics namespace and log level come from the POWERTOOLS_* environment the
template sets. The Tracer patches botocore, so every AWS call becomes an X-Ray subsegment.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
