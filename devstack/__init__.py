"""The service on one machine, with no AWS account: moto, a stand-in for Clerk, and helpers that
build every AWS resource from template.yaml. Used by the tests and by the local stack; never deployed.
"""
