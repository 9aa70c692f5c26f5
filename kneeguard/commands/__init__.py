"""Command groups that live in their own modules; `kneeguard.cli` registers them."""
