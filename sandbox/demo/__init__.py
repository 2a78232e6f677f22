"""``tokenwatch demo``: the whole data walk on one machine, told as a story.

``steps`` runs it (the local stack, a simulated week, the Dagster jobs in process, the gate
shown withholding a day), ``readback`` reads back what a person is shown (the marts, the
intake's records), and ``corruption`` is the one place the demo damages data on purpose: one
partition's success rate set to an impossible value, so the gate has something to withhold,
and restored afterwards.
"""
