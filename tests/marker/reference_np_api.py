"""Run the reference flowd np_api plugin (PyPI `scitags`) on lines; print what it accepts.

Usage: python reference_np_api.py WORKDIR < lines. Prints one JSON list of accepted
FlowIDs (as lists). The reference reads /etc/flowd/flowd.cfg at import and its pipe path
from settings, so both are pointed into WORKDIR first.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

work = Path(sys.argv[1])
cfg = work / "flowd.cfg"
cfg.write_text("")
import scitags.settings  # noqa: E402

scitags.settings.CONFIG_PATH = str(cfg)
scitags.settings.NP_API_FILE = str(work / "np_api")
import logging  # noqa: E402

logging.disable(logging.CRITICAL)  # the reference logs each rejection with a traceback
from scitags.plugins import np_api  # noqa: E402

np_api.init()
flows: queue.Queue = queue.Queue()
stop = threading.Event()
thread = threading.Thread(target=np_api.run, args=(flows, stop, None), daemon=True)
thread.start()
lines = sys.stdin.read().splitlines()
fd = os.open(scitags.settings.NP_API_FILE, os.O_WRONLY)
for line in lines:  # one write per line, as a writer would
    os.write(fd, (line + "\n").encode())
    time.sleep(0.02)
os.close(fd)
time.sleep(0.5)
stop.set()
thread.join(5)
accepted = []
while not flows.empty():
    f = flows.get()
    accepted.append([f.state, f.prot, f.src, f.src_port, f.dst, f.dst_port, f.exp, f.act])
print(json.dumps(accepted))
