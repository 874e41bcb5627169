"""Start Onionbalance once its tor has a consensus (it reads the consensus once at start and exits
without one). Waits on tor's control port (cookie authentication), bounded, then runs Onionbalance
in this process with the given arguments.
    python3 onionbalance-start.py <control port> <onionbalance arguments…>
"""
import sys
import time

import stem.control
from onionbalance.manager import main

port = int(sys.argv[1])
deadline = time.monotonic() + 600
phase = "no control connection"
while time.monotonic() < deadline:
    try:
        with stem.control.Controller.from_port(address="127.0.0.1", port=port) as controller:
            controller.authenticate()
            while time.monotonic() < deadline:
                phase = controller.get_info("status/bootstrap-phase")
                if "PROGRESS=100" in phase:
                    break
                time.sleep(0.5)
            break
    except (stem.SocketError, stem.connection.AuthenticationFailure, OSError) as e:
        phase = str(e)
        time.sleep(0.5)
if "PROGRESS=100" not in phase:
    sys.exit("tor did not bootstrap within 600 s: %s" % phase)
print("tor bootstrapped; starting onionbalance", flush=True)
sys.argv = ["onionbalance", "-i", "127.0.0.1", "-p", str(port)] + sys.argv[2:]
sys.exit(main())
