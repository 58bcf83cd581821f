"""Tests for bot.bitrix24.errors: what every error of the tree says about itself."""

from __future__ import annotations

import re

import pytest

import bot.bitrix24 as b24
from bot.bitrix24 import Bitrix24Error, RateLimited, WebhookURLError

HOST = "portal.bitrix24.com"


def test_webhook_url_error_is_a_value_error_with_known_codes() -> None:
    """Settings validators can treat a bad webhook as a ValueError."""
    err = WebhookURLError("webhook_not_https", host=HOST)
    assert isinstance(err, ValueError)
    assert err.code == "webhook_not_https"
    assert err.transient is False
    with pytest.raises(ValueError, match="unknown"):
        WebhookURLError("webhook_whatever")


def test_error_classes_share_the_contract() -> None:
    """Every exported error has the attributes, and leaf codes are unique snake_case."""
    classes = [
        obj
        for obj in vars(b24).values()
        if isinstance(obj, type) and issubclass(obj, Bitrix24Error)
    ]
    assert len(classes) > 30
    leaf_codes: dict[str, type[Bitrix24Error]] = {}
    for cls in classes:
        for attr in ("code", "transient", "may_have_reached_portal"):
            assert hasattr(cls, attr), (cls, attr)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.code), cls
        if not cls.__subclasses__() and cls is not WebhookURLError:
            assert cls.code not in leaf_codes, (cls, leaf_codes.get(cls.code))
            leaf_codes[cls.code] = cls
    err = RateLimited(host=HOST)
    assert (err.portal_code, err.portal_message, err.http_status) == (None, None, None)
