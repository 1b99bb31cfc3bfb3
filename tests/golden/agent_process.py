"""A simulated agent in its own process, shipping to Supabase, for the kill-and-restart test.

    python -m tests.golden.agent_process URL KEY SPOOL_DIR [--seed N --calls N] [--empty]
        [--freeze-at-close]

`--freeze-at-close` prints "frozen" once every event has been handed to the sink (and the sink
has sent or written to disk what it could), then waits forever instead of closing: the test
SIGKILLs it there, as a host would kill a stuck agent. `--empty` plays no traffic: the
restarted agent, whose only work is the outbox its predecessor left.
"""

from __future__ import annotations

import argparse
import sys
import time

from collectors.instrumentation.sinks import SupabaseSink
from collectors.simulated_agent import Workload, play
from tests.golden.harness import Transport, sdk_config
from tests.golden.workload import golden_workload


class FreezingSink(SupabaseSink):
    def close(self) -> None:
        print("frozen", flush=True)
        while True:
            time.sleep(60)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("key")
    p.add_argument("spool_dir")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--empty", action="store_true")
    p.add_argument("--freeze-at-close", action="store_true")
    args = p.parse_args()
    workload = Workload() if args.empty else golden_workload(args.seed, args.calls)
    sink_cls = FreezingSink if args.freeze_at_close else SupabaseSink
    # timeout: long enough that the batch in flight is still in flight when the test kills us
    sink = sink_cls(args.url, args.key, f"{args.spool_dir}/_supabase_outbox", timeout=10.0)
    play(workload, sdk_config(Transport("supabase", {}, lambda _: None)), sink=sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
