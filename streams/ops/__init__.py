"""Operator tools around a deployment: local brokers, worker processes, the demo, topics and metrics."""
