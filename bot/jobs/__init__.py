"""The task engine: Dramatiq broker, actors, shared rate limits and the worker.

The scheduler's ticks only enqueue (`actors.Jobs`); workers (`paperbot worker`, or the
in-process one of `paperbot run`) plan the due digests of a slot, rank them in batches and
deliver each through the outbox, at the platforms' rate limits shared by every process.
"""
