"""The public contract's MQTT topics, message kinds and id pattern, with no dependencies, so
ingest, rules, notifier and the composition root all derive them from one place."""
