"""edge-actions: subscribe to the daemon's events and run configured commands (a door strike, a siren).

    edge-actions --config /etc/edge-actions/actions.yaml [--check]

Which rules an event fires, and how their commands run without a shell or payload values on
their command line: :mod:`edge.actions.rules`.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..actions.config import DEFAULT_ACTIONS_PATH, load_actions_config, missing_programs
from ..actions.rules import Actions
from ..actions.subscriber import Subscriber
from ..errors import EdgeError

log = logging.getLogger("edge-actions")


def main(argv: list[str] | None = None) -> int:
    """The ``edge-actions`` command."""
    parser = argparse.ArgumentParser(prog="edge-actions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_ACTIONS_PATH, help="actions YAML")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)
    try:
        config = load_actions_config(args.config)
    except EdgeError as error:
        print(f"edge-actions: {error}", file=sys.stderr)
        return 2
    missing = missing_programs(config)
    if args.check:
        print(f"{args.config}: OK ({len(config.rules)} rules for {', '.join(config.devices)})"
              f"{'' if not missing else f', but {len(missing)} rule(s) cannot run yet'}")
        for line in missing:
            print(f"warning: {line}")
        return 0
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for line in missing:
        log.error("%s", line)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    actions = Actions(config)
    subscriber = Subscriber(config, actions)
    subscriber.start()
    log.info("edge-actions: %d rule(s) for device(s) %s", len(config.rules), ", ".join(config.devices))
    while not stop.wait(1.0):
        pass
    subscriber.stop()
    actions.wait_idle(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
