"""Send UDP datagrams with a chosen IPv6 flow label (scapy, layer 3), run inside a lab host.

    send_udp.py SRC DST SPORT DPORT COUNT LABEL [SIZE]     prints the number sent
Each payload is unique (sequence number), so captures can be compared packet by packet.
"""
import sys

from scapy.all import IPv6, UDP, Raw, conf, send  # noqa: E402

conf.verb = 0
src, dst, sport, dport, count, label = sys.argv[1:7]
size = int(sys.argv[7]) if len(sys.argv) > 7 else 200
pkts = [IPv6(src=src, dst=dst, fl=int(label, 0), hlim=64) / UDP(sport=int(sport), dport=int(dport))
        / Raw(f"scitags-test {i:06d} ".encode().ljust(size, b"x")) for i in range(int(count))]
send(pkts, inter=0.002)
print(len(pkts))
