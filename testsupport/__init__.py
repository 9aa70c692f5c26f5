"""What the tests and the benchmarks share: real servers (mosquitto, SMTP, HTTP, a TCP proxy that
can cut a connection), a device client, a small club and its messages, and ways to run the
command line and the service. Not installed with KneeGuard; import it from the repository root.
"""

from __future__ import annotations

from testsupport.cli import assert_user_error, kneeguard
from testsupport.club import (
    CHECKIN_TEMPLATE,
    CHECKIN_TOPIC,
    PREFIX,
    RUN_TEMPLATE,
    RUN_TOPIC,
    add_alert,
    checkin_payload,
    insert_checkin,
    insert_run,
    new_uuid,
    register,
    run_payload,
)
from testsupport.inprocess import Running, running_service
from testsupport.servers import (
    CHECKIN_USER,
    DEPLOY_CONF,
    IN_CI,
    ROOT,
    SERVICE_PASSWORD,
    SERVICE_USER,
    TEST_PASSWORD,
    TEST_USER,
    DeployMosquitto,
    DeviceClient,
    Mosquitto,
    deploy_config,
    device_client,
    free_port,
    held_for,
    missing,
    open_session,
    port_open,
    self_signed_certificate,
    tls_config,
    wait_until,
)
from testsupport.service import ServiceProcess, service, service_env
from testsupport.sinks import HttpSink, Request, SmtpSink
from testsupport.tcpproxy import TcpProxy

__all__ = [
    "CHECKIN_TEMPLATE",
    "CHECKIN_TOPIC",
    "CHECKIN_USER",
    "DEPLOY_CONF",
    "IN_CI",
    "PREFIX",
    "ROOT",
    "RUN_TEMPLATE",
    "RUN_TOPIC",
    "SERVICE_PASSWORD",
    "SERVICE_USER",
    "TEST_PASSWORD",
    "TEST_USER",
    "DeployMosquitto",
    "DeviceClient",
    "HttpSink",
    "Mosquitto",
    "Request",
    "Running",
    "ServiceProcess",
    "SmtpSink",
    "TcpProxy",
    "add_alert",
    "assert_user_error",
    "checkin_payload",
    "deploy_config",
    "device_client",
    "free_port",
    "held_for",
    "insert_checkin",
    "insert_run",
    "kneeguard",
    "missing",
    "new_uuid",
    "open_session",
    "port_open",
    "register",
    "run_payload",
    "running_service",
    "self_signed_certificate",
    "service",
    "service_env",
    "tls_config",
    "wait_until",
]
