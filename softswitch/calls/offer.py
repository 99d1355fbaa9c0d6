"""The INVITE that offers a queued call to an agent's phone: its extra headers, in one place."""

from __future__ import annotations

from .session_timer import offer_headers as session_headers


def agent_offer_headers(*, domain: str, auto_answer_after: float, session_expires: int, path: list[str],
                        queue: str) -> list[tuple[str, str]]:
    """Auto-answer hints (Call-Info answer-after, as Polycom/Yealink read it; Alert-Info for others; RFC 5373
    Answer-Mode), our session timer, the binding's Path as Route (RFC 3327) and the queue the call came from."""
    extra = [("Call-Info", f"<sip:{domain}>;answer-after={auto_answer_after:g}"),
             ("Alert-Info", f"<http://localhost>;info=alert-autoanswer;delay={auto_answer_after:g}"),
             ("Answer-Mode", "Auto"),      # RFC 5373: what baresip, Linphone and pjsua act on
             *session_headers(session_expires)]
    extra += [("Route", p) for p in path]
    if queue:
        extra.append(("X-CC-Queue", queue))
    return extra
