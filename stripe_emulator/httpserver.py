"""A small, fast HTTP/1.1 server (thread per connection, keep-alive).

Only what the emulator needs: Content-Length and chunked request bodies,
persistent connections, one ``sendall`` per response. The application object
has a ``handle(method, target, headers, body)`` method returning
``(status, headers, body_bytes)`` or ``None`` to drop the connection without
answering (used by the "hang" fault).
"""

import socket
import sys
import threading
import time

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

MAX_LINE = 65536
MAX_BODY = 16 * 1024 * 1024


class _BadRequest(Exception):
    pass


class HTTPServer:
    def __init__(self, host, port, app, quiet=False, log=None):
        self.app = app
        self.quiet = quiet
        self.log = log or sys.stderr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1024)
        self.host, self.port = self.sock.getsockname()[:2]
        self._stopping = False
        self._log_lock = threading.Lock()

    def serve_forever(self):
        while not self._stopping:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                if self._stopping:
                    return
                continue
            t = threading.Thread(target=self._handle_conn, args=(conn,), daemon=True)
            t.start()

    def shutdown(self):
        self._stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _write_log(self, line):
        with self._log_lock:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except Exception:
                pass

    def _handle_conn(self, conn):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rf = conn.makefile("rb", 65536)
        try:
            while True:
                line = rf.readline(MAX_LINE + 1)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                started = time.perf_counter()
                try:
                    parts = line.decode("latin-1").split()
                    if len(parts) != 3:
                        raise _BadRequest("bad request line")
                    method, target, version = parts
                    headers = {}
                    while True:
                        h = rf.readline(MAX_LINE + 1)
                        if h in (b"\r\n", b"\n", b""):
                            break
                        k, sep, v = h.decode("latin-1").partition(":")
                        if not sep:
                            raise _BadRequest("bad header")
                        headers[k.strip().lower()] = v.strip()
                    body = b""
                    if headers.get("expect", "").lower() == "100-continue":
                        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    te = headers.get("transfer-encoding", "").lower()
                    if "chunked" in te:
                        chunks = []
                        total = 0
                        while True:
                            size_line = rf.readline(MAX_LINE + 1)
                            size = int(size_line.split(b";")[0].strip() or b"0", 16)
                            if size == 0:
                                while rf.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                                    pass
                                break
                            total += size
                            if total > MAX_BODY:
                                raise _BadRequest("body too large")
                            chunks.append(rf.read(size))
                            rf.readline(MAX_LINE + 1)
                        body = b"".join(chunks)
                    else:
                        cl = headers.get("content-length")
                        if cl:
                            n = int(cl)
                            if n < 0 or n > MAX_BODY:
                                raise _BadRequest("bad content-length")
                            body = rf.read(n)
                            if len(body) != n:
                                return
                except (_BadRequest, ValueError, UnicodeDecodeError) as e:
                    msg = (
                        '{"error": {"type": "invalid_request_error", "message": "Malformed HTTP request: %s"}}'
                        % str(e).replace('"', "'")
                    ).encode()
                    conn.sendall(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg
                    )
                    return
                conn_hdr = headers.get("connection", "").lower()
                if version == "HTTP/1.1":
                    keep_alive = conn_hdr != "close"
                else:
                    keep_alive = conn_hdr == "keep-alive"
                result = self.app.handle(method, target, headers, body)
                if result is None:
                    # "hang" fault: close without answering
                    if not self.quiet:
                        self._write_log("%s %s -> (no response: hang fault)" % (method, target))
                    return
                status, rheaders, rbody = result
                out = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
                for k, v in rheaders:
                    out.append("%s: %s" % (k, v))
                out.append("Content-Length: %d" % len(rbody))
                if not keep_alive:
                    out.append("Connection: close")
                else:
                    out.append("Connection: keep-alive")
                head = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                if method == "HEAD":
                    conn.sendall(head)
                else:
                    conn.sendall(head + rbody)
                if not self.quiet:
                    self._write_log(
                        "%s %s %d %.1fms"
                        % (
                            method,
                            target.split("?", 1)[0] if len(target) > 200 else target,
                            status,
                            (time.perf_counter() - started) * 1000,
                        )
                    )
                if not keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            try:
                rf.close()
            except Exception:
                pass
            try:
                conn.close()
            except Exception:
                pass
