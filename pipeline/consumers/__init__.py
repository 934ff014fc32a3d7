"""PySpark Structured Streaming consumers that write the topic into PostgreSQL."""
