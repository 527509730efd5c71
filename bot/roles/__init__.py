"""paperbot's process roles, one module each; `bot/__main__.py` registers their commands.

- `run`: every role in one process (the default, embedded Redis);
- `scheduler`: only the clock (ingest, retrain, digest ticks), in the lease holder;
- `web`: the Slack HTTP receiver only, stateless, any number of replicas;
- `discord`: some gateway shards of the Discord bot (`--shards 0,1 --shard-count 4`).

`paperbot worker` (the task engine's workers) runs the jobs the clock enqueues.
"""
