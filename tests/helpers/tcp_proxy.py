"""A TCP proxy that can go silent: the API server as one client sees it when the network
path or the server hangs (connections accepted, bytes never answered).

`HangingProxy(port)` forwards 127.0.0.1:<proxy.port> to 127.0.0.1:<port>. After `hang()`
it keeps every connection open and keeps accepting new ones, but forwards nothing in
either direction, so a client's request waits for an answer that never comes and its
watches go quiet without a FIN or RST: only the client's own timeouts notice. `resume()`
forwards again (what was held back is dropped: the client has timed out by then).
Only loopback; threads are daemons and `close()` ends them.
"""

from __future__ import annotations

import select
import socket
import threading

__all__ = ["HangingProxy"]


class HangingProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self._target = (host, target_port)
        self._listener = socket.create_server((host, 0))
        self.port = int(self._listener.getsockname()[1])
        self._hung = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self._target[0]}:{self.port}"

    def hang(self) -> None:
        self._hung.set()

    def resume(self) -> None:
        self._hung.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.close()
                except OSError:
                    pass
            self._sockets.clear()

    def __enter__(self) -> HangingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream), name="proxy-pump", daemon=True
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._hung.is_set():
                    # Hold the connection: read nothing, answer nothing, close nothing.
                    self._closed.wait(0.05)
                    continue
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for s in ready:
                    if self._hung.is_set():
                        break
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._sockets.discard(a)
                self._sockets.discard(b)
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
