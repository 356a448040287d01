#!/bin/sh
# Entrypoint of the local stand-in image (the real image has the same file). `sam local` does not
# use it (it sets its own entrypoint, the emulator); it lets `docker run IMAGE handler.fn` work too.
if [ $# -ge 1 ]; then
    export _HANDLER="$1"
fi
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ] && [ -x /var/rapid/aws-lambda-rie ]; then
    exec /var/rapid/aws-lambda-rie /var/runtime/bootstrap
fi
exec /var/runtime/bootstrap
