"""Run lifecycle: run ids and resume, checkpoints, stop signals, durable writes, records, snapshots, loggers."""
