"""The pages a person sees in the browser while installing b24mail (OAuth mode).

The landing page at the install path (what b24mail does, each permission and why, an
"Add to Slack" button), and the pages Slack's redirect ends on: success (the next step,
`/b24mail connect`, and a link into Slack) and failure (what went wrong, how to retry). English
or Russian by the browser's Accept-Language; one self-contained HTML document each (inline
style, no scripts, images or fonts from anywhere).

Plugged in through Bolt's public hooks: `install_page_rendering_enabled` with
`AsyncOAuthFlow.build_install_page_html` overridden, and `AsyncOAuthSettings.callback_options`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.wording import DEFAULT_LOCALE, LANGUAGES, Texts

HTML = "text/html; charset=utf-8"
# Bolt's failure reasons that have their own explanation; others get the general one.
KNOWN_FAILURES = ("access_denied", "invalid_browser", "invalid_state", "invalid_code")

_STYLE = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
background:#f4f6f8;color:#1d1c1d;line-height:1.5}
main{max-width:40rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.6rem;margin-top:0}
code{background:#f0f0f0;padding:.1rem .3rem;border-radius:3px}
dt{font-weight:bold;margin-top:.6rem}
dd{margin-left:1.2rem}
a.button{display:inline-block;background:#4a154b;color:#fff;text-decoration:none;
padding:.7rem 1.4rem;border-radius:6px;font-weight:bold;margin-top:1rem}
a.button:hover,a.button:focus{background:#611f69}
.note{color:#616061;font-size:.9rem}
"""


def page_language(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header (q-values honoured)."""
    best, best_q = DEFAULT_LOCALE, -1.0
    for position, part in enumerate((accept_language or "").split(",")):
        fields = part.strip().split(";")
        tag = fields[0].strip().lower()
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = tag.split("-")[0]
        # Earlier entries win ties, as browsers list them in preference order.
        if language in LANGUAGES and q > 0 and q - position * 1e-6 > best_q:
            best, best_q = language, q - position * 1e-6
    return best


def _document(t: Texts, *, title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{t.locale}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # An empty inline icon: otherwise the browser fetches /favicon.ico.
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def _code(text: str) -> str:
    """Escape, then show `…` spans as <code> (the catalogue's Slack-style backticks)."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def landing_page(t: Texts, *, install_url: str, scopes: Sequence[str]) -> str:
    permissions = "".join(
        f"<dt><code>{escape(scope)}</code></dt>\n<dd>{_code(t(scope_key(scope)))}</dd>\n"
        for scope in scopes
    )
    body = (
        f"<h1>{escape(t('install.title'))}</h1>\n"
        f"<p>{_code(t('install.what'))}</p>\n"
        f"<p>{_code(t('install.how'))}</p>\n"
        f"<h2>{escape(t('install.permissions'))}</h2>\n<dl>\n{permissions}</dl>\n"
        f'<p><a class="button" id="add-to-slack" href="{escape(install_url, quote=True)}">'
        f"{escape(t('install.button'))}</a></p>\n"
        f'<p class="note">{_code(t("install.after"))}</p>\n'
    )
    return _document(t, title=t("install.title"), body=body)


def scope_key(scope: str) -> str:
    """`chat:write.public` → `install.scope.chat_write_public`."""
    return "install.scope." + scope.replace(":", "_").replace(".", "_")


def open_slack_url(*, app_id: str | None, team_id: str | None) -> str:
    """Slack's own redirect into the app's messages in that workspace."""
    query = {k: v for k, v in (("app", app_id), ("team", team_id)) if v}
    return "https://slack.com/app_redirect?" + urlencode(query) if query else "https://slack.com/"


def success_page(t: Texts, *, team_name: str | None, open_url: str) -> str:
    intro = t("install.success_in", team=team_name) if team_name else t("install.success_generic")
    body = (
        f"<h1>{escape(t('install.success_title'))}</h1>\n"
        f"<p>{_code(intro)}</p>\n"
        f"<p>{_code(t('install.success_next'))}</p>\n"
        f'<p><a class="button" id="open-slack" href="{escape(open_url, quote=True)}">'
        f"{escape(t('install.open_slack'))}</a></p>\n"
    )
    return _document(t, title=t("install.success_title"), body=body)


def failure_page(t: Texts, *, reason: str, retry_url: str) -> str:
    key = f"install.failure.{reason}" if reason in KNOWN_FAILURES else "install.failure.other"
    body = (
        f"<h1>{escape(t('install.failure_title'))}</h1>\n"
        f"<p>{_code(t(key, reason=reason))}</p>\n"
        f"<p>{_code(t('install.failure_retry'))}</p>\n"
        f'<p><a class="button" id="retry" href="{escape(retry_url, quote=True)}">'
        f"{escape(t('install.retry'))}</a></p>\n"
    )
    return _document(t, title=t("install.failure_title"), body=body)


def _texts(headers: Mapping[str, Sequence[str]]) -> Texts:
    values = headers.get("accept-language") or []
    return Texts(page_language(values[0] if values else None))


class InstallFlow(AsyncOAuthFlow):
    """Bolt's OAuth flow with b24mail's own landing page (Bolt's documented extension point)."""

    async def build_install_page_html(self, url: str, request: AsyncBoltRequest) -> str:
        return landing_page(
            _texts(request.headers), install_url=url, scopes=self.settings.scopes or ()
        )


def callback_options() -> AsyncCallbackOptions:
    """Our success and failure pages, with Bolt's state cookie removed as its defaults do."""

    async def success(args: AsyncSuccessArgs) -> BoltResponse:
        installation = args.installation
        page = success_page(
            _texts(args.request.headers),
            team_name=installation.team_name,
            open_url=open_slack_url(app_id=installation.app_id, team_id=installation.team_id),
        )
        cookie = args.settings.state_utils.build_set_cookie_for_deletion()
        return BoltResponse(
            status=200, body=page, headers={"Content-Type": HTML, "Set-Cookie": cookie}
        )

    async def failure(args: AsyncFailureArgs) -> BoltResponse:
        page = failure_page(
            _texts(args.request.headers), reason=args.reason, retry_url=args.settings.install_path
        )
        cookie = args.settings.state_utils.build_set_cookie_for_deletion()
        return BoltResponse(
            status=args.suggested_status_code,
            body=page,
            headers={"Content-Type": HTML, "Set-Cookie": cookie},
        )

    return AsyncCallbackOptions(success=success, failure=failure)
