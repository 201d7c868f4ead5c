"""Send prepared Ethernet frames out of an interface (AF_PACKET), run inside a lab host.

    send_frames.py IFACE FILE PPS      prints the number sent
FILE holds the frames, each as a 2-byte big-endian length and the bytes (tests build them
with scapy: flowd-go's options, random flow labels); PPS paces them (0: as fast as possible).
"""
import socket
import struct
import sys
import time

iface, path, pps = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = open(path, "rb").read()
frames, off = [], 0
while off < len(data):
    (n,) = struct.unpack_from("!H", data, off)
    frames.append(data[off + 2:off + 2 + n])
    off += 2 + n
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
start = time.monotonic()
for i, frame in enumerate(frames):
    if pps > 0:
        due = start + i / pps
        while time.monotonic() < due:
            time.sleep(max(0.0, min(0.005, due - time.monotonic())))
    s.send(frame)
print(len(frames))
