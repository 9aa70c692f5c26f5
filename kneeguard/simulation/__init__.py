"""The simulated club: seeded data, publishing it over MQTT, and the self-contained demo."""
