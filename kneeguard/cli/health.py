"""`kneeguard health`: is the running service ready? (its `/readyz`, for the compose check)"""

from __future__ import annotations

import click

from kneeguard.cli.common import fail, load_settings


def readyz_url(bind: str) -> str:
    """Where this host reaches `/readyz` of a service serving on KNEEGUARD_WEB_BIND."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/readyz"


@click.command("health")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 120))
def health(timeout: float) -> None:
    """Exit 0 when the running service is ready, else 1 with the reason."""
    import httpx

    url = readyz_url(load_settings().web_bind)
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        fail(f"not ready: no answer from {url} ({type(exc).__name__}); is `kneeguard run` running?")
    try:
        document = response.json()
        reasons = [str(reason) for reason in document.get("reasons", [])]
    except (ValueError, AttributeError):
        reasons = []
    if response.status_code == 200:
        click.echo("ready")
        return
    detail = "; ".join(reasons) or f"HTTP {response.status_code}"
    fail(f"not ready: {detail}")
