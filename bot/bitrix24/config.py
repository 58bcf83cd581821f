"""The settings of a Bitrix24Client: time-outs, rate limit, retries and the host check."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Timeouts (seconds), rate limit, retry and host-check settings of a Bitrix24Client."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 10.0
    pool_timeout: float = 10.0
    rate: float = 2.0
    burst: int = 50
    limiter_enabled: bool = True
    rate_limit_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    transport_retries: int = 2
    # How long the portal may keep running one request (Bitrix24: 60 s). A write whose outcome
    # is unknown (time-out, dropped connection) may still be running there, and two requests
    # with one Idempotency-Key at the same moment may both run; so it is retried only once
    # this much time has passed since that attempt started.
    portal_request_limit: float = 60.0
    host_check_ttl: float = 60.0
    user_agent: str = "b24mail"

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout", "rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        for name in (
            "rate_limit_retries",
            "transport_retries",
            "backoff_base",
            "backoff_max",
            "portal_request_limit",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.host_check_ttl < 0:
            raise ValueError("host_check_ttl must not be negative")
