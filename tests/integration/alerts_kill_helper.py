"""A process that writes a notification and is SIGKILLed before sending it, or that restarts
and sends what it finds (tests/integration/test_alert_delivery.py).

    alerts_kill_helper.py DATA_DIR WEBHOOK_URL written|frozen|restart
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from analysis.alerts import kinds
from collectors.alerts.delivery import WebhookReceiver
from collectors.alerts.runner import Alerting
from collectors.alerts.settings import AlertSettings
from tests.alerting import T0, Clock, Script, scripted_rule


def main() -> int:
    root, url, stage = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    script = Script([{"k": "v"}])
    kinds.KINDS["scripted"] = script.kind()
    clock = Clock(T0)
    settings = AlertSettings(rules=(scripted_rule(),), group_wait_s=0)
    alerting = Alerting(root, settings, [WebhookReceiver(url)], clock=clock)
    if stage == "restart":
        clock.advance(minutes=1)
        alerting.sender.run_once()
        return 0
    alerting.evaluate_once()  # the state change and its notification, one transaction
    if stage == "frozen":  # frozen with its delivery, not yet sent
        alerting.store.flush(clock(), alerting.engine.timers, ["webhook"], lambda *_: None)
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main())
