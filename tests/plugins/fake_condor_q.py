"""Prints what `condor_q -global -totals -allusers` prints for two schedds (HTCondor 10 layout).

The held count comes from the environment (FAKE_HELD) so a test can change it between polls.
"""

import os

HELD = int(os.environ.get("FAKE_HELD", "3"))
TOTAL = 1200 + HELD
print(f"""
-- Schedd: fifebatch1.fnal.gov : <131.225.67.1:9615?... @ 03/02/17 10:00:00
Total for query: 0 jobs; 0 completed, 0 removed, 0 idle, 0 running, 0 held, 0 suspended
Total for all users: {TOTAL} jobs; 0 completed, 2 removed, 400 idle, 798 running, {HELD} held, \
0 suspended

-- Schedd: fifebatch2.fnal.gov : <131.225.67.2:9615?... @ 03/02/17 10:00:00
Total for query: 0 jobs; 0 completed, 0 removed, 0 idle, 0 running, 0 held, 0 suspended
Total for all users: 10 jobs; 1 completed, 0 removed, 9 idle, 0 running, 0 held, 0 suspended
""")
