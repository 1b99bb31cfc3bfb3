"""Run the collectors service with SlowSource only (a child process the tests SIGKILL)."""

import sys

from collectors.service import CollectorService, DataPaths, Job
from tests.integration.sources_for_tests import SlowSource

if __name__ == "__main__":
    from pathlib import Path

    total = int(sys.argv[2])
    jobs = {"slow": Job(SlowSource(total=total), {"kind": "interval", "seconds": 3600})}
    CollectorService(DataPaths(Path(sys.argv[1])), jobs, poll_seconds=0.2).serve_forever()
