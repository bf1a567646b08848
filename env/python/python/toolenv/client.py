"""``Client``: the ``Env`` API over HTTP against ``toolenv serve`` (stdlib only: http.client with
keep-alive, one connection per thread)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from http.client import HTTPConnection, HTTPSConnection
from typing import Any, Mapping, Optional, Sequence

from . import CallResult, Scores, StepResult, _arguments_json, _call_result, _check_str


class ServerError(RuntimeError):
    """A request the server refused (4xx) or failed (5xx): ``status``, ``kind``, ``message``."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(f"HTTP {status} {kind}: {message}")
        self.status, self.kind, self.message = status, kind, message


class Client:
    """``toolenv serve`` at ``url`` (e.g. ``http://127.0.0.1:8080``), with an optional bearer
    token."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 300.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url: expected http://HOST:PORT, got {url!r}")
        self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> HTTPConnection:
        c = getattr(self._local, "c", None)
        if c is None:
            kind = HTTPSConnection if self._scheme == "https" else HTTPConnection
            c = kind(self._host, self._port, timeout=self._timeout)
            self._local.c = c
        return c

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            c = self._connection()
            try:
                c.request(method, path, body=data, headers=self._headers)
                r = c.getresponse()
                raw = r.read()
                break
            except (ConnectionError, OSError):
                # A keep-alive connection the server closed while idle: reconnect once.
                c.close()
                self._local.c = None
                if attempt:
                    raise
        answer = json.loads(raw) if raw else None
        if r.status >= 400:
            e = (answer or {}).get("error", {}) if isinstance(answer, dict) else {}
            raise ServerError(r.status, e.get("kind", "http"), e.get("message", raw.decode(errors="replace")))
        return r.status, answer

    def tools(self) -> list:
        return self.request("GET", "/v1/tools")[1]

    def session(self, id: Optional[str] = None, seed: Optional[int] = None) -> "RemoteSession":
        body: dict = {}
        if id is not None:
            body["id"] = id
        if seed is not None:
            body["seed"] = seed
        _, answer = self.request("POST", "/v1/sessions", body)
        return RemoteSession(self, answer["id"], answer["seed"])

    def reward(self, text: str, ground_truth: str, step: int = 0, variant: str = "default") -> Scores:
        return self.reward_batch([{"text": text, "ground_truth": ground_truth, "step": step,
                                   "variant": variant}])[0]

    def reward_batch(self, items: Sequence[Mapping[str, Any]]) -> list:
        _, answer = self.request("POST", "/v1/reward", {"items": list(items)})
        out = []
        for i, s in enumerate(answer["scores"]):
            if "error" in s:
                raise ValueError(s["error"]["message"])
            out.append(Scores(**s))
        return out


class RemoteSession:
    """A session of ``toolenv serve``: the same methods as ``toolenv.Session``."""

    def __init__(self, client: Client, id: str, seed: int):
        self._client, self.id, self.seed = client, id, seed
        self._path = "/v1/sessions/" + urllib.parse.quote(id, safe="")

    def call(self, name: str, arguments: Any) -> CallResult:
        _check_str("name", name)
        args = json.loads(_arguments_json(arguments))
        _, answer = self._client.request("POST", self._path + "/calls",
                                         {"calls": [{"name": name, "arguments": args}]})
        return _call_result(answer["results"][0])

    def step(self, text: str) -> StepResult:
        _check_str("text", text)
        _, answer = self._client.request("POST", self._path + "/step", {"text": text})
        return StepResult.from_wire(answer)

    async def acall(self, name: str, arguments: Any) -> CallResult:
        return await asyncio.to_thread(self.call, name, arguments)

    async def astep(self, text: str) -> StepResult:
        return await asyncio.to_thread(self.step, text)

    def close(self) -> None:
        try:
            self._client.request("DELETE", self._path)
        except ServerError as e:
            if e.status != 404:
                raise

    def __enter__(self) -> "RemoteSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
