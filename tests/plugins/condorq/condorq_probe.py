"""A gridalarm probe: each schedd's job totals from ``condor_q -totals``, one gauge per poll."""

import re
import shlex
import subprocess

from gridalarm.producers.probe import Duration, Probe, ProbeError, ProbeOptions

TOTALS = re.compile(
    r"Total for all users: (\d+) jobs; (\d+) completed, (\d+) removed, (\d+) idle, "
    r"(\d+) running, (\d+) held, (\d+) suspended"
)
NAMES = ("jobs", "completed", "removed", "idle", "running", "held", "suspended")


class CondorQOptions(ProbeOptions):
    command: str = "condor_q -global -totals -allusers"
    timeout: Duration = 60.0


class CondorQTotals(Probe):
    summary = "job totals per schedd from condor_q -totals (idle, running, held, ...)"
    Options = CondorQOptions
    interval = 300.0

    def poll(self, now):
        try:
            out = subprocess.run(
                shlex.split(self.options.command),
                capture_output=True,
                text=True,
                timeout=self.options.timeout,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as err:
            raise ProbeError(f"condor_q failed: {err}") from None
        samples = []
        for block in out.split("-- Schedd: ")[1:]:  # one block per schedd
            totals = TOTALS.search(block)
            if totals:
                counts = {f"{n}_jobs": int(v) for n, v in zip(NAMES, totals.groups(), strict=True)}
                samples.append(self.gauge(now, f"schedd:{block.split()[0]}", **counts))
        if not samples:
            raise ProbeError("condor_q printed no 'Total for all users' line")
        return samples
