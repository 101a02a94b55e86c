"""The response store: every model answer is written to SQLite (WAL) the moment it arrives.

Why SQLite: a killed run resumes where it stopped, several pytest-xdist workers can
write at once, and a lookup costs microseconds. The key hashes exactly what changes
an output (see `cache_key`); errors and empty answers are never stored, so they are
retried on the next run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .core import PROTOCOL_VERSION, sha256_bytes

# 2: `truncated` (the answer stopped at its token cap), so that a warm run makes the same
# re-ask decisions as the cold run without asking the model. A version-1 store is
# upgraded in place; its answers' flag is unknown (NULL), and the runner treats an unknown
# flag as "may be cut off": an unread legacy answer is asked again with a larger budget.
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    image_id TEXT,
    variant TEXT,
    text TEXT NOT NULL,
    created REAL NOT NULL,
    truncated INTEGER
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    image_id TEXT,
    dim INTEGER NOT NULL,
    data BLOB NOT NULL,
    created REAL NOT NULL
);
"""


def cache_key(identity: dict, *, stage: str, prompt: str, image_sha: Optional[str], settings: dict) -> str:
    """Hash of everything that changes a model's output, and nothing else.

    `identity` is the backend's identity (backend, model id, revision, local weight
    fingerprint); `prompt` the exact user text (the chat template is fixed by the
    model identity); `image_sha` the image content hash; `settings` the generation
    settings. Registry names, task names and image paths are deliberately left out:
    renaming a model or moving a file must not invalidate answers.
    """
    payload = {
        "protocol": PROTOCOL_VERSION,
        "identity": identity,
        "stage": stage,
        "prompt": prompt,
        "image": image_sha,
        "settings": settings,
    }
    return sha256_bytes(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())


def _upgrade_from_1(conn: sqlite3.Connection) -> None:
    """Add the `truncated` column to a version-1 store (its answers stay valid)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
        if "truncated" not in columns:
            conn.execute("ALTER TABLE responses ADD COLUMN truncated INTEGER")
        conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class ResponseStore:
    """A process-safe handle on the SQLite store; reconnects after fork (xdist)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn: Optional[sqlite3.Connection] = None
        self._pid: Optional[int] = None

    # -- connection -----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            conn = self._open()
        except sqlite3.DatabaseError:
            self._set_aside()
            conn = self._open()
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] == "1":
            _upgrade_from_1(conn)
        elif row[0] != str(SCHEMA_VERSION):
            conn.close()
            raise sqlite3.DatabaseError(f"foreign schema version {row[0]}")
        return conn

    def _set_aside(self) -> None:
        """A corrupt or foreign file is renamed, never read further, never deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.rename(p.with_name(f"{p.name}.corrupt-{stamp}"))

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    # -- reads and writes ------------------------------------------------------------
    def get_many(self, keys: list[str]) -> dict[str, str]:
        """Stored texts for the keys that have one."""
        return {key: text for key, (text, _) in self.get_answers(keys).items()}

    def get_answers(self, keys: list[str]) -> dict[str, tuple[str, Optional[bool]]]:
        """Stored (text, truncated) for the keys that have one; truncated is None when the
        answer was stored before the flag existed (schema 1)."""
        conn = self._connect()
        found: dict[str, tuple[str, Optional[bool]]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, text, cut in conn.execute(
                    f"SELECT key, text, truncated FROM responses WHERE key IN ({marks})", chunk):
                found[key] = (text, None if cut is None else bool(cut))
        return found

    def put_many(self, rows: Iterable[dict]) -> int:
        """Store answers in one transaction; empty texts are refused (never cached)."""
        now = time.time()
        values = [
            (r["key"], r["stage"], r["model"], r["task"], r.get("image_id"), r.get("variant"), r["text"], now,
             None if r.get("truncated") is None else int(bool(r["truncated"])))
            for r in rows
            if r.get("text") is not None and str(r["text"]).strip() != ""
        ]
        if not values:
            return 0
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO responses (key, stage, model, task, image_id, variant, text, created, "
                             "truncated) VALUES (?,?,?,?,?,?,?,?,?)", values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(values)

    def get_meta(self, name: str) -> Optional[str]:
        """A value the run keeps about the store's models (e.g. `served:<name>`), or None."""
        row = self._connect().execute("SELECT value FROM meta WHERE key=?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        """Keep (or replace) a value under `name`; `schema` is the store's own."""
        if name == "schema":
            raise ValueError("the schema version is not a run's to set")
        self._connect().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored float32 vectors for the keys that have one (raw bytes, never unpickled)."""
        conn = self._connect()
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, dim, data in conn.execute(f"SELECT key, dim, data FROM embeddings WHERE key IN ({marks})", chunk):
                vec = np.frombuffer(data, dtype="<f4")
                if vec.shape == (dim,):
                    found[key] = vec
        return found

    def put_vectors(self, rows: Iterable[tuple[str, str, str, np.ndarray]]) -> int:
        """Store (key, model, image_id, vector) rows in one transaction; non-finite vectors are refused."""
        now = time.time()
        values = []
        for key, model, image_id, vec in rows:
            vec = np.asarray(vec, dtype="<f4").ravel()
            if vec.size and np.isfinite(vec).all():
                values.append((key, model, image_id, int(vec.size), vec.tobytes(), now))
        if not values:
            return 0
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?,?,?,?,?,?)", values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(values)

    def count(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]
