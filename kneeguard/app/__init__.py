"""The composition root: the service that wires ingest, rules, delivery, the scheduler and the
web app together, its events, delivery channels and logging."""
