"""The listeners' link cache: links read from memory while nothing has changed.

Nearly every request starts with "is this user linked, and to what" (help, compose, submit).
Through the ORM that read costs more than all of Bolt's own work for the request, so requests
read links through this cache. Any change to a link made in this process (by the listeners, the
worker, a test) empties it at once; changes made by other processes (another web process,
`b24mail rotate-keys`) are seen after LINK_CACHE_SECONDS at most. Only links are cached, never
"not linked", so linking elsewhere shows at once. What the worker sends never depends on this
cache: it reads links with LinkService.require_stored (the database).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, object_session

from bot.identity import SlackUser
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory
from bot.store.links import LinkRepository
from bot.store.models import Link

LINK_CACHE_SECONDS = 30.0
LINK_CACHE_ENTRIES = 4096
_WRITTEN = "b24mail_links_written"


class LinkWrites:
    """Counts changes to the links table in this process; a cached link of an older count is void."""

    generation = 0
    _watching = False
    _lock = threading.Lock()

    @classmethod
    def bump(cls) -> None:
        cls.generation += 1

    @classmethod
    def watch(cls) -> None:
        """Listen to every Session of the process for link writes; once, however often called.

        The hooks are process-wide (SQLAlchemy's Session class events), so they are registered
        when a cache is built rather than when this module is imported: importing a module
        changes nothing, and a process without a cache (`b24mail worker`, the CLI) runs none.
        """
        with cls._lock:
            if cls._watching:
                return
            for name in ("after_insert", "after_update", "after_delete"):
                event.listen(Link, name, _link_flushed)
            event.listen(Session, "do_orm_execute", _links_statement)
            event.listen(Session, "after_commit", _links_committed)
            event.listen(Session, "after_soft_rollback", _links_rolled_back)
            cls._watching = True


def _mark(session: Session | None) -> None:
    LinkWrites.bump()
    if session is not None:
        session.info[_WRITTEN] = True


def _link_flushed(_mapper: Any, _connection: Any, target: Link) -> None:
    _mark(object_session(target))


def _links_statement(state: ORMExecuteState) -> None:
    if state.is_select:
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is Link:
        _mark(state.session)


def _links_committed(session: Session) -> None:
    # Bumped again on commit: a read between the flush and the commit saw the old row.
    if session.info.pop(_WRITTEN, False):
        LinkWrites.bump()


def _links_rolled_back(session: Session, _previous: Any) -> None:
    if session.info.pop(_WRITTEN, False):
        LinkWrites.bump()


class CachedLinkRepository(LinkRepository):
    """LinkRepository whose get() answers from memory while nothing has changed."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        box: SecretBox,
        ttl: float = LINK_CACHE_SECONDS,
        max_entries: int = LINK_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(sessions=sessions, box=box)
        LinkWrites.watch()
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[SlackUser, tuple[int, float, Link]] = OrderedDict()

    async def get(self, user: SlackUser) -> Link | None:
        hit = self._entries.get(user)
        if hit is not None:
            generation, expires, cached = hit
            if generation == LinkWrites.generation and self._clock() < expires:
                return cached
        generation = LinkWrites.generation  # taken before the read: a write during it voids it
        link = await self.get_stored(user)
        if link is None:
            self._entries.pop(user, None)
            return None
        self._entries[user] = (generation, self._clock() + self._ttl, link)
        self._entries.move_to_end(user)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return link
