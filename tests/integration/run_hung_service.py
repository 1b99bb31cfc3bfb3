"""Run the collectors service with a source that hangs and one that works, stopping on SIGTERM
the way `workbench serve` does (a child process the tests signal)."""

import signal
import sys
from pathlib import Path

from collectors.service import CollectorService, DataPaths, Job
from tests.integration.sources_for_tests import CountingSource, HangingSource

if __name__ == "__main__":
    jobs = {
        "hanging": Job(HangingSource(), {"kind": "interval", "seconds": 3600}),
        "counting": Job(CountingSource(), {"kind": "interval", "seconds": 3600}),
    }
    service = CollectorService(DataPaths(Path(sys.argv[1])), jobs, poll_seconds=0.2)
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    service.serve_forever()
