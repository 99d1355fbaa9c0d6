"""The website widgets: what a browser on someone else's web page may do without an account.

`origins` reads and compares page origins (an allow-list per widget); `tokens` signs short-lived nonces and
tokens (HMAC) bound to an origin; `limits` caps how many a client address and the node hand out; `gate` is the
click-to-dial policy the SIP side asks (may this INVITE start a call, and with what CDR channel); `http` serves
the widget's script and its token endpoints on the node's HTTP listener.
"""
