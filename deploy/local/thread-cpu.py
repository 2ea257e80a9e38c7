#!/usr/bin/env python3
"""CPU seconds of a process's threads, split into its own and the Kafka
client library's (librdkafka names its threads `rdk:…`), sampled from
/proc until the process ends. Prints "OWN CLIENT".

    deploy/local/thread-cpu.py TIME_PID

TIME_PID is the `/usr/bin/time` that runs the process (as throughput.sh
runs it, for its rusage); its child is the one sampled.
A thread's CPU is its last sample, every 50 ms, so a run loses at most the
last 50 ms of each thread's time; throughput.sh's runs end on an idle
wait, which costs next to nothing.
"""

import os
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def child_of(pid):
    """The process pid started, once it has."""
    while True:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        if children:
            return int(children[0])
        time.sleep(0.001)


def threads(pid):
    """(name, user + system ticks) of each live thread, by thread id."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue  # ended between the listing and the read
        # The name is in parentheses and may hold spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[tid] = (name, int(fields[11]) + int(fields[12]))
    return found


def main():
    pid = child_of(int(sys.argv[1]))
    last = {}
    try:
        while True:
            last.update(threads(pid))
            # A zombie has no threads left to read: the process is done.
            if open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z":
                break
            time.sleep(0.05)
    except OSError:
        pass  # reaped
    client = sum(t for name, t in last.values() if name.startswith("rdk:"))
    own = sum(t for name, t in last.values() if not name.startswith("rdk:"))
    print(f"{own / TICKS:.2f} {client / TICKS:.2f}")


if __name__ == "__main__":
    main()
