"""Streaming pipeline: local stack, producer, Spark consumers and job supervisor."""
