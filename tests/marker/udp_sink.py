"""Print every UDP datagram received on [::1]:PORT as one JSON line (runs inside a test netns)."""
import json
import socket
import sys

sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.bind(("::1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data = sock.recv(65535)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
