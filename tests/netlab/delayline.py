#!/usr/bin/env python3
"""A user-space delay line for the NAT lab (this kernel has no netem).

Copies every Ethernet frame between two interfaces of one namespace, in both directions,
holding each for DELAY_MS: `delayline.py IF_A IF_B DELAY_MS`. The two interfaces are taken off
any bridge by the caller, so this process is the only path between them; generic segmentation
and receive offloads must be off on the path (lab.sh does it), so that every frame it reads is
one it can send again.
"""
import heapq
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def open_raw(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def main():
    if_a, if_b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    delay = delay_ms / 1000.0
    a, b = open_raw(if_a), open_raw(if_b)
    other = {a.fileno(): b, b.fileno(): a}
    queue = []  # (due, seq, socket to send on, frame): a heap in arrival order per due time
    seq = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        readable, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for s in readable:
            while True:
                try:
                    frame, addr = s.recvfrom(65535)
                except BlockingIOError:
                    break
                # A frame this process sent shows up as outgoing on the other socket: skip it.
                if addr[2] == PACKET_OUTGOING:
                    continue
                heapq.heappush(queue, (now + delay, seq, other[s.fileno()], frame))
                seq += 1
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError as e:  # a frame too large, an interface gone: drop it, as a wire would
                print(f"delayline: dropped a {len(frame)}-byte frame: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
