"""Run the i2v CLI under cProfile, timed in CPU seconds of the event loop's thread:
`I2V_PROFILE_OUT=out.prof python3 benchmarks/profile_cli.py run ...`.

cProfile sees only the main thread, where the event loop runs; CPU spent in worker threads
(fsyncs, hashing, PyAV verification) is added to the profile's header from getrusage. Used by
`bench_throughput.py --profile`; read a dump with `python3 -m pstats`.
"""

from __future__ import annotations

import cProfile
import json
import os
import resource
import sys
import time


def main() -> None:
    from i2v_pipeline.cli import main as cli

    out = os.environ.get("I2V_PROFILE_OUT", "i2v.prof")
    sys.argv = ["i2v", *sys.argv[1:]]
    prof = cProfile.Profile(time.thread_time)  # CPU, not wall: waiting in epoll costs nothing
    try:
        prof.runcall(cli)
    finally:  # click ends with SystemExit: dump, then let it carry the exit code
        prof.dump_stats(out)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        split = {
            "process": usage.ru_utime + usage.ru_stime,
            "user": usage.ru_utime,
            "system": usage.ru_stime,
            "main_thread": time.thread_time(),
        }
        with open(out + ".json", "w") as f:
            json.dump(split, f)


if __name__ == "__main__":
    main()
