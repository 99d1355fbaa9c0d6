"""Web chat test parts: a node with a multimedia queue and a `chat` section, and a customer's website on another
origin (its own port, a strict CSP) that embeds the node's widget with one script tag."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import free_port
from tests.support.cc import PASSWORDS, Api, ws_node


def chat_edits(site_port: int, chat: str = "") -> tuple[tuple[str, str], ...]:
    """Alice and Bob also serve the multimedia queue `web`; the site at http://localhost:SITE may embed the widget."""
    return (
        ("queues: [support]}", "queues: [support, web]}"),
        ("queues: [support, sales]}", "queues: [support, sales, web]}"),
        ("called_routes:", f"""  - {{name: web, type: multimedia, max_wait: 5m, max_calls: 20}}
chat:
  origins: ["http://localhost:{site_port}"]
  concurrency: {{chats: 3, while_on_call: 1}}
  sessions_per_address: 20
  address_rate: {{messages: 200, burst: 400}}
{chat}called_routes:"""),
    )


@contextmanager
def chat_node(tmp_path, site_port: int, chat: str = ""):
    with ws_node(tmp_path, chat_edits(site_port, chat)) as ports:
        yield ports


def site_page(node_http: int, queue: str = "web") -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,"></head>
<body><h1>Example shop</h1><p>Our products, with a chat button in the corner.</p>
<script src="http://127.0.0.1:{node_http}/chat/widget.js" data-queue="{queue}" data-title="Chat with us" defer></script>
</body></html>
"""


def site_csp(node_http: int) -> str:
    node = f"127.0.0.1:{node_http}"
    return (f"default-src 'none'; script-src http://{node}; style-src http://{node}; img-src data:; "
            f"connect-src ws://{node}; base-uri 'none'; form-action 'none'")


@contextmanager
def website(node_http: int, port: int):
    """The customer's website on 127.0.0.1:port (reach it as http://localhost:port, the allowed origin)."""
    page = site_page(node_http).encode()
    csp = site_csp(node_http)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        server.shutdown()
        server.server_close()


def ready_agent(sip_port: int, http_port: int, account: str, softphone: str) -> Api:
    """The agent's softphone registered (to a port nobody answers) and signed in, idle."""
    from tools.agents_load import register_agents
    assert register_agents(sip_port, [(softphone, PASSWORDS[softphone])], "cc.test", free_port()) == 1
    api = Api(http_port)
    api.login(account)
    api.call("POST", "/api/agents/me/sign-in", expect=200)
    return api
