"""kneeguard."""
