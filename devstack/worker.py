"""One warm Lambda "container": a process that imports a handler once and runs invocations.

Started by devstack.lambdas as `python -m devstack.worker <code dir> <module.function>` with the
function's environment. Like the Lambda Python runtime it puts the code directory first on
sys.path, works in it, imports the handler once (module state lives as long as the process),
and runs one invocation at a time.

Protocol: one JSON request per line on stdin ({"requestId", "event", "deadlineMs"}), one JSON
answer per line on the original stdout ({"result": ...} or {"error": {errorMessage, errorType,
stackTrace}}). Everything the function prints or logs goes to stderr, framed by Lambda's START,
END and REPORT lines, which is how the parent attributes log lines to an invocation.

Standard library only: the function's own dependencies are the only imports in this process.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object of the Lambda Python runtime (the attributes handlers use)."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.invoked_function_arn = env.get("DEVSTACK_FUNCTION_ARN", "")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
    }


def main() -> None:
    code_dir, handler_name = sys.argv[1], sys.argv[2]
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the function's stdout (print, Powertools' JSON logs, EMF metrics) joins the log
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.path[0] = code_dir  # where `-m` put the current directory: the code comes first, as in Lambda
    os.chdir(code_dir)

    module_name, _, function_name = handler_name.rpartition(".")
    init_started = time.monotonic()
    handler: Any = None
    init_error: dict[str, Any] | None = None
    print(f"INIT_START Runtime Version: python:{sys.version_info[0]}.{sys.version_info[1]} (devstack)")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # noqa: BLE001 - reported to the caller, as Lambda's runtime does
        init_error = _error(error, f"Runtime.ImportModuleError: {type(error).__name__}")
        print(f"[ERROR] Runtime.ImportModuleError: Unable to import module '{module_name}': {error}")
    init_ms: float | None = (time.monotonic() - init_started) * 1000
    sys.stdout.flush()

    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["requestId"]
        started = time.monotonic()
        print(f"START RequestId: {request_id} Version: $LATEST")
        answer: dict[str, Any]
        if init_error is not None:
            answer = {"error": {**init_error, "requestId": request_id}}
        else:
            try:
                result = handler(request["event"], LambdaContext(request_id, int(request["deadlineMs"])))
                answer = {"result": json.loads(json.dumps(result))}
            except Exception as error:  # noqa: BLE001 - the runtime reports any failure of the handler
                answer = {"error": {**_error(error), "requestId": request_id}}
                print(f"[ERROR] {type(error).__name__}: {error}", file=sys.stderr)
                traceback.print_exc()
        duration = (time.monotonic() - started) * 1000
        max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"END RequestId: {request_id}")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {int(duration) + 1} ms\t"
            f"Memory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '128')} MB\t"
            f"Max Memory Used: {max_rss_mb} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
            init_ms = None
        print(report)
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
