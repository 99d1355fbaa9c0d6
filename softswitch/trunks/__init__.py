"""SIP trunks to carriers and SBCs: who a request comes from, how numbers arrive and leave, which trunk an
outbound number takes (and the next one on failure), each trunk's own call caps, its OPTIONS up/down state and
its registration to a provider.

Every module here is pure (no asyncio, sockets, clocks or randomness: `now` comes in) except `service`, the
asyncio shell the node starts.
"""
