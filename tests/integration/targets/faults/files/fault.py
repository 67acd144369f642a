"""fault.py VOLUME_FILE ACTION [LAB_SH HOST]: inject a fault while a module fills VOLUME_FILE.

Waits (up to 120 s) until the collection's record on VOLUME_FILE (xattr user.virtops) says its fill
has begun and not finished, then:
  restart  stops libvirtd of lab host HOST with LAB_SH, waits 3 s, starts it again;
  kill     kills the module process that fills the volume (the record names it) with SIGKILL, as if
           the node had died (the process was started by this test).
Prints one JSON line: what was done and how far the fill had come.
"""
import json
import os
import signal
import subprocess
import sys
import time


def record(path):
    try:
        return json.loads(os.getxattr(path, "user.virtops"))
    except (OSError, ValueError):
        return None


def main():
    path, action = sys.argv[1], sys.argv[2]
    deadline = time.time() + 120
    while True:
        rec = record(path)
        if rec is not None and rec.get("complete") is False:
            break
        if time.time() > deadline:
            sys.exit("no fill of %s began within 120 s" % path)
        time.sleep(0.02)
    size = os.stat(path).st_blocks * 512
    if action == "restart":
        lab, host = sys.argv[3], sys.argv[4]
        subprocess.run([lab, "libvirtd", "stop", host], check=True)
        time.sleep(3)
        subprocess.run([lab, "libvirtd", "start", host], check=True)
    elif action == "kill":
        os.kill(int(rec["filler"]["pid"]), signal.SIGKILL)
    else:
        sys.exit("unknown action %r" % action)
    print(json.dumps(dict(action=action, allocated_when_hit=size, filler=rec.get("filler"))))


if __name__ == "__main__":
    main()
