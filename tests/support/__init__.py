"""Helpers the test suites share: the AWS store, the local stack, HTTP, the agent scene, constants."""
