"""Worker processes: they run the leader's claimed runs, taken from a Procrastinate queue.

The leader queues each run in the transaction that claims it (`queue.py`); a worker takes it
from its queue and runs it as the scheduler would (`runs.py`), in a process of its own
(`process.py`). See docs/workers.md.
"""
