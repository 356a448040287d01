"""What the test suites share: one set of constants, the AWS store and its captured bus, events,
Lambda contexts, the HTTP call, faults, the agent, bulk, token and timeline scenes, the translated
template, the local stack, the SAM and the operator's environments."""
