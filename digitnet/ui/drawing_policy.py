"""The app's saving policy, enforced on the server: which drawings are kept, for whom, how
often, and who sees them; and the ``save_drawing`` API's file check.

A visitor's "Keep my drawings" switch is state of that visitor's session on the server: the
Right / No buttons and the API never take a page's word that saving is on. Locally saving
starts on; on a Hugging Face Space, where visitors are strangers, it starts off, each
visitor sees only their own drawings in the gallery, and the operator's variables
(:data:`OPERATOR_VARIABLES`) can switch saving off for everyone or share the gallery.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from digitnet.drawing_data import save_image_file
from digitnet.errors import DigitnetError
from digitnet.storage import on_space
from digitnet.store import SOURCE_API, DrawingStore, StoreError, open_store, resolve_db_path

SAVING_ENV = "DIGITNET_SAVING"  # "off": nothing is kept, whatever a visitor chooses
API_SAVING_ENV = "DIGITNET_API_SAVING"  # "1": save_drawing takes drawings even on a Space
GALLERY_ENV = "DIGITNET_GALLERY"  # "everyone": a Space's gallery shows every visitor's rows
SAVES_PER_MINUTE_ENV = "DIGITNET_SAVES_PER_MINUTE"
DEFAULT_SAVES_PER_MINUTE = 30  # a person saves one drawing every few seconds at most
SESSIONS = 10_000  # switch states remembered; the oldest sessions are forgotten first
OPERATOR_VARIABLES = {
    SAVING_ENV: "off: keep no drawings at all, whatever visitors choose",
    API_SAVING_ENV: "1: the save_drawing API keeps drawings on a Space too (off there)",
    GALLERY_ENV: "everyone: a Space's gallery shows every visitor's drawings (default: "
    "each visitor's own)",
    SAVES_PER_MINUTE_ENV: f"saves per visitor per minute (default {DEFAULT_SAVES_PER_MINUTE})",
}


@dataclass(frozen=True)
class AppStore:
    """The drawings store the app opened, or None with the one-line reason saving is off."""

    path: Path
    store: DrawingStore | None
    warning: str | None

    @property
    def saving(self) -> bool:
        return self.store is not None


def open_app_store(path: str | Path | None = None) -> AppStore:
    """Open ``path`` (else ``$DIGITNET_DB``, else the default of :mod:`digitnet.storage`).

    A corrupt, foreign or read-only database does not stop the app: it starts with saving
    switched off and this one-line warning naming the file and what to do (for the
    operator's log; visitors see :meth:`SavingPolicy.visitor_warning`).
    """
    resolved = resolve_db_path(path)
    try:
        return AppStore(resolved, open_store(resolved), None)
    except DigitnetError as error:
        return AppStore(resolved, None, f"Saving drawings is off: {error}")


def _per_minute(environ: Mapping[str, str]) -> int:
    text = environ.get(SAVES_PER_MINUTE_ENV, "").strip()
    if not text:
        return DEFAULT_SAVES_PER_MINUTE
    if not text.isdigit() or int(text) < 1:
        raise DigitnetError(f"{SAVES_PER_MINUTE_ENV}={text!r} is not a count; give e.g. 30")
    return int(text)


class SavingPolicy:
    """Each session's switch, its saves in the last minute, and the operator's settings."""

    def __init__(
        self, environ: Mapping[str, str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.space = on_space(environ)
        self.forced_off = environ.get(SAVING_ENV, "").strip().lower() == "off"
        self.api = not self.forced_off and (
            not self.space or environ.get(API_SAVING_ENV, "").strip() == "1"
        )
        self.shared_gallery = not self.space or environ.get(GALLERY_ENV, "") == "everyone"
        self.per_minute = _per_minute(environ)
        self._clock = clock
        self._lock = threading.Lock()
        self._switch: OrderedDict[str, bool] = OrderedDict()
        self._saves: dict[str, deque[float]] = {}

    @property
    def default(self) -> bool:
        """The switch of a session that has not touched it: on locally, off on a Space."""
        return not self.space and not self.forced_off

    def set_switch(self, session: str, on: object) -> None:
        """A visitor turned the switch on or off: remembered for that session only."""
        with self._lock:
            self._switch[session] = bool(on) and not self.forced_off
            self._switch.move_to_end(session)
            while len(self._switch) > SESSIONS:
                forgotten, _ = self._switch.popitem(last=False)
                self._saves.pop(forgotten, None)

    def is_on(self, session: str) -> bool:
        if self.forced_off:
            return False
        with self._lock:
            return self._switch.get(session, self.default)

    def admit(self, session: str, count: int = 1) -> None:
        """Count ``count`` saves of ``session`` (a number's digits are one each), all or
        none; a one-line StoreError past the rate limit."""
        now = self._clock()
        with self._lock:
            recent = self._saves.setdefault(session, deque())
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            lead = "not kept: " if count == 1 else f"not kept: its {count} digits are as many "
            if count > self.per_minute:
                raise StoreError(
                    f"{lead}drawings, over this server's limit of {self.per_minute} a minute "
                    f"per visitor"
                )
            if len(recent) + count > self.per_minute:
                # Wait until enough of the oldest saves are a minute old to leave room.
                oldest_kept = recent[len(recent) + count - self.per_minute - 1]
                lead = lead if count == 1 else f"{lead}drawings, and "
                raise StoreError(
                    f"{lead}{self.per_minute} drawings a minute is this server's limit per "
                    f"visitor; try again in {60.0 - (now - oldest_kept):.0f} s"
                )
            recent.extend([now] * count)
            if len(self._saves) > SESSIONS:  # the longest-known session first
                self._saves.pop(next(iter(self._saves)))

    def gallery_session(self, session: str) -> str | None:
        """Whose drawings the gallery shows this session: None for everyone's."""
        return None if self.shared_gallery else session

    def kept_text(self) -> str:
        """What the switch's help says is kept, where, and who sees it (no server path)."""
        seen = (
            "shown in its Your drawings tab to everyone using it"
            if self.shared_gallery
            else "shown in the Your drawings tab to this page's session only"
        )
        return (
            "Kept when you press Right or No, it's a …: the 28×28 input the model saw, a small "
            "PNG and the strokes of your drawing, the model, its ten probabilities, its answer "
            "and your label, with the time and this page's session id (no name, no address). "
            f"Stored in the drawings database of the machine running this app and {seen}; only "
            "this page's session can delete its rows."
        )

    def save_api_file(
        self, store: DrawingStore | None, path: str | None, label: object, session: str
    ) -> dict:
        """The ``save_drawing`` API: an image file and a label 0-9 -> ``{"id", "count"}``."""
        if store is None:
            raise StoreError("saving drawings is off on this server (its database could not open)")
        if not self.api:
            why = (
                f"its owner can set {API_SAVING_ENV}=1"
                if self.space and not self.forced_off
                else "its owner switched saving off"
            )
            raise StoreError(f"saving drawings through the API is off on this server; {why}")
        if not path:
            raise StoreError("no image was sent; send a PNG or JPEG of one digit and a label 0-9")
        self.admit(session)
        saved = save_image_file(store, path, label, session=session, source=SOURCE_API)
        return {"id": saved.id, "count": saved.count}


VISITOR_STORE_WARNING = (
    "Saving drawings is off: this server's drawings database could not be opened "
    "(its operator's log says why)."
)
