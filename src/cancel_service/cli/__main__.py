"""`python -m cancel_service.cli`: the same command as the `cancel-service` script."""

import sys

from cancel_service.cli import main

sys.exit(main())
