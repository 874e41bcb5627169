"""Start Onionbalance once its tor has a consensus (it reads the consensus once at start and exits
without one). Waits on tor's control port (cookie authentication), bounded, then runs Onionbalance
in this process with the given arguments.
    python3 onionbalance-start.py <control port> <onionbalance arguments…>
"""
import sys
import time

import stem.control
from onionbalance.hs_v3 import params
from onionbalance.manager import main

if "--is-testnet" in sys.argv:
    # Onionbalance's test-network mode calls a backend offline when its descriptor was fetched more
    # than 20 s ago, while it fetches every 20 s: on a loaded machine a slow fetch round then drops
    # every backend and the front is never published. Two minutes keeps the fast cadence otherwise.
    params.INSTANCE_DESCRIPTOR_TOO_OLD_TESTNET = 120
    # Onionbalance 0.2.4 (hashring.py) loops forever on the second replica when the first took
    # every HSDir, as it does when a network has no more HSDirs than HSDIR_SPREAD_STORE (4): a
    # private network's three authorities. One HSDir per replica avoids that; tor clients try
    # each responsible HSDir in turn. The public network has thousands: untouched there.
    params.HSDIR_SPREAD_STORE = 1

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
