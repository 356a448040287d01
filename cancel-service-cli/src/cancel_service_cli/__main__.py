"""`python -m cancel_service_cli`: the same command as the `cancel-service` script."""

import sys

from cancel_service_cli import main

sys.exit(main())
