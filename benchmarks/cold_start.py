"""Cold start of the HTTP function, measured against the floor every boto3 Lambda pays.

Each sample is a fresh interpreter (a new container), the variants interleaved so machine noise
hits them alike. Printed: median wall and CPU milliseconds (on a busy machine the CPU time is the
steadier of the two: an init is CPU-bound, and the wall time also counts waiting for a core),
each with its ratio to the baseline, and peak RSS; then the deployed configuration against its
floor.

    baseline  import boto3 + create the DynamoDB, EventBridge and Step Functions clients
    import    import the handler module (what Lambda's init phase runs)
    init      import the handler module + build what its first request builds (clients,
              key cache; no network)
    floor     the same work as `deployed` with plain boto3 and PyJWT: import both, create the
              DynamoDB and EventBridge clients, fetch the JWKS (PyJWKClient) and verify a session
              token (RS256, issuer, required claims)
    deployed  the CancelFunction as the template deploys it (Tracing: Active, the default): its
              environment from template.yaml and Lambda's, an X-Ray trace header; import the
              handler, build what its first request builds, fetch the JWKS and verify the same
              token through the service's verifier
    passthrough  `deployed` with the template's Tracing=PassThrough (no X-Ray SDK loaded): what
              tracing costs

Both JWKS fetches go to one JWKS server on 127.0.0.1 that this script runs. Every variant runs
with only the packages the function gets when deployed: src/requirements.txt and the boto3 of
this environment (the Lambda runtime's own), installed once into a directory of the system's
temporary directory (keyed by what goes in it), on `python -S` (no site-packages): a package that
the development environment has and Lambda does not (requests, rich, click) would otherwise be
imported by the X-Ray SDK's patches or by httpx and counted.

Run: .venv/bin/python benchmarks/cold_start.py [samples]
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.clerk import DEV_ISSUER, JwksServer, SigningKey, session_claims  # noqa: E402
from devstack.lambdas import runtime_environment  # noqa: E402
from devstack.template import Template  # noqa: E402

_MEASURE = """
import json, resource, time
started, started_cpu = time.perf_counter(), time.process_time()
{code}
elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"ms": elapsed * 1000, "cpu_ms": cpu * 1000, "rss_mib": peak_mib}}))
"""

HANDLER_IMPORT = "import cancel_service.handlers.cancel_http"
FLOOR = """
import os
import boto3, jwt
for name in ('dynamodb', 'events'):
    boto3.client(name)
token = os.environ['BENCHMARK_TOKEN']
key = jwt.PyJWKClient(os.environ['BENCHMARK_JWKS_URL'], timeout=2).get_signing_key_from_jwt(token)
jwt.decode(token, key, algorithms=['RS256'], issuer=os.environ['BENCHMARK_ISSUER'], leeway=5,
           options={'require': ['exp', 'iat', 'nbf', 'iss', 'sub', 'sid'], 'verify_aud': False})
"""
DEPLOYED = f"""
import os
{HANDLER_IMPORT}
from cancel_service import runtime
runtime.cancel_service()
runtime.session_verifier().verify(os.environ['BENCHMARK_TOKEN'])
"""
# X-Ray trace headers as Lambda sets them: a sampled request (Tracing: Active), and one that
# nothing upstream sampled (PassThrough; an HTTP API starts no trace).
TRACE_HEADERS = {
    "Active": "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1",
    "PassThrough": "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=0",
}

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "POWERTOOLS_SERVICE_NAME": "cancel-service",
    "POWERTOOLS_METRICS_NAMESPACE": "StopTheAI",
    "MESSAGES_TABLE": "messages",
    "PROJECTS_TABLE": "projects",
    "EVENT_BUS_NAME": "bus",
    "CLERK_ISSUER": "https://clerk.example.com",
    "PYTHONDONTWRITEBYTECODE": "",
}
REQUIREMENTS = ROOT / "src" / "requirements.txt"


def lambda_package() -> Path:
    """The function's packages as `sam build` installs them, with the runtime's boto3."""
    wanted = REQUIREMENTS.read_text() + f"\nboto3=={version('boto3')}\n"
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"cancel-service-lambda-package-{digest}"
    if not (target / ".complete").exists():
        requirements = target.with_suffix(".txt")
        requirements.write_text(wanted)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-warn-conflicts",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            check=True,
        )
        (target / ".complete").touch()
    return target


def deployed_environment(jwks_url: str, tracing: str = "Active") -> dict[str, str]:
    """The CancelFunction's environment in Lambda: the runtime's variables and the template's for
    this Tracing parameter, as deployed (no `sam local` marker, no endpoint override), with the
    bytecode cache of the other variants."""
    parameters = {"ClerkIssuer": DEV_ISSUER, "ClerkJwksUrl": jwks_url, "Tracing": tracing}
    template = Template(parameters, require_all=False)
    environment = runtime_environment(template.functions()["CancelFunction"], "http://127.0.0.1:9")
    del environment["AWS_SAM_LOCAL"], environment["AWS_ENDPOINT_URL"]
    return environment | {"_X_AMZN_TRACE_ID": TRACE_HEADERS[tracing], "PYTHONDONTWRITEBYTECODE": ""}


def variants(jwks_url: str, token: str) -> dict[str, tuple[str, dict[str, str]]]:
    """name: (code, environment)."""
    verification = {"BENCHMARK_TOKEN": token, "BENCHMARK_JWKS_URL": jwks_url, "BENCHMARK_ISSUER": DEV_ISSUER}
    return {
        "baseline": (
            "import boto3\nfor name in ('dynamodb', 'events', 'stepfunctions'):\n    boto3.client(name)",
            ENVIRONMENT,
        ),
        "import": (HANDLER_IMPORT, ENVIRONMENT),
        "init": (
            f"{HANDLER_IMPORT}\nfrom cancel_service import runtime\n"
            "runtime.cancel_service(); runtime.session_verifier()",
            ENVIRONMENT,
        ),
        "floor": (FLOOR, ENVIRONMENT | verification),
        "deployed": (DEPLOYED, deployed_environment(jwks_url) | verification),
        "passthrough": (DEPLOYED, deployed_environment(jwks_url, "PassThrough") | verification),
    }


def sample(code: str, environment: dict[str, str], package: Path) -> dict[str, float]:
    python_path = f"{ROOT / 'src'}{os.pathsep}{package}"
    output = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE.format(code=code)],
        env={"PATH": os.environ.get("PATH", ""), **environment, "PYTHONPATH": python_path},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.splitlines()[-1])
    return result


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    package = lambda_package()
    key = SigningKey.generate("ins_benchmark")
    with JwksServer([key]) as jwks:
        # Valid for the whole run: every variant verifies the same token.
        token = key.sign(session_claims("user_2benchmark", lifetime=3600))
        measured = variants(jwks.url, token)
        for code, environment in measured.values():  # warm the file system cache, write bytecode
            sample(code, environment, package)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in measured}
        for _ in range(samples):
            for name, (code, environment) in measured.items():
                results[name].append(sample(code, environment, package))

    wall = {name: statistics.median(r["ms"] for r in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(r["cpu_ms"] for r in runs) for name, runs in results.items()}
    print(f"python {sys.version.split()[0]}, {samples} samples per variant, medians")
    print(f"{'variant':11} {'wall ms':>8} {'ratio':>6} {'CPU ms':>8} {'ratio':>6} {'peak RSS MiB':>13}")
    for name, runs in results.items():
        rss = statistics.median(r["rss_mib"] for r in runs)
        print(
            f"{name:11} {wall[name]:8.1f} {wall[name] / wall['baseline']:6.2f} "
            f"{cpu[name]:8.1f} {cpu[name] / cpu['baseline']:6.2f} {rss:13.1f}"
        )
    for name in ("deployed", "passthrough"):
        print(f"{name} / floor: {wall[name] / wall['floor']:.2f} wall, {cpu[name] / cpu['floor']:.2f} CPU")


if __name__ == "__main__":
    main()
