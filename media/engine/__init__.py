"""The node's RTP media engine: UDP streams, one 20 ms ticker, rooms, prompts, recordings, video relay.

This is the only media package that does I/O. Everything numeric is delegated to the pure kernels:
g711 (codec tables), rtp (packets, SeqTracker), jitter (JitterBuffer), mixer (Mixer), dtmf (RFC 4733),
wav (Recorder). The package: core (MediaEngine: streams, rooms, modes, the tick's composition),
ticker (the drift-free schedule and its catch-up), stages (the tick's receive, mix and send steps),
stream (one RTP session's receive and send paths), relay (two-party relay: the per-packet protocol and
the routes), player (prompts, music on hold), recording (stereo WAV), codecs (G.711 tables).

Usage (inside a running asyncio loop, default or uvloop)::

    engine = MediaEngine(loop, address="127.0.0.1", port_range=(20000, 29999))
    await engine.start()
    a = await engine.open_stream()               # a.port goes into the SDP answer
    a.set_remote("10.0.0.5", 4000, pt=0, event_pt=101)
    a.on_dtmf = lambda digit: ...
    engine.join(a, "call-1"); engine.join(b, "call-1")
    done = engine.play(a, frames)                # asyncio.Future -> True (finished) / False (stopped)
    rec = engine.record(customer, agent, "/var/rec/x.wav"); ...; rec.close()
    await engine.stop()

Documented choices:

* Sending: an audio stream sends one packet per tick when it has a remote address AND (it is in a room,
  or a prompt is playing to it, or DTMF is being sent on it). A stream alone in a room sends silence
  (keeps NAT bindings and the far jitter buffer alive). A stream in no room with no prompt sends nothing.
  A room of two or more where no member sent a frame this tick sends nothing (no supervisor override
  set): the parties are silent and send nothing themselves, so the switch does as they do (silence
  suppression, RFC 3551 s. 4.1; the first packet after it has the marker bit); RTCP reports go on.
* A prompt playing to a stream REPLACES the room audio for that stream (the caller hears the prompt
  only); what the stream says is still mixed into its room. ``play`` on a stream that is already
  playing stops the earlier prompt (its future resolves False).
* ``play`` futures resolve True when the last frame's 20 ms slot is over, False when stopped
  (``stop_play``, a new ``play``, stream close, engine stop). Cancelling the future stops the prompt.
* Symmetric RTP: the first valid RTP packet received after ``open_stream``/``set_remote`` latches the
  remote address to the packet's source (``latch=True``), so a NATed phone is reached where it really
  is. Before any remote is known the stream sends nothing. Packets are accepted from any source.
* Lost/late frames are concealed with silence: zeros, or where a tick mixes G.711 codes directly (one
  codec, no supervisor override) the code nearest to zero, which for A-law is +8 (also in recordings).
* Two-party relay: in a room of exactly two audio streams with the same payload type, no prompt playing
  to either, no DTMF being sent on either and no supervisor override involving either, each RTP packet
  is forwarded to the other party the moment it arrives, unchanged, as a media relay does: nothing is
  decoded, mixed, encoded or buffered and the ticker does not touch the pair. The far end sees its
  partner's SSRC, sequence numbers and timestamps (a new SSRC when the relay starts or ends, as on any
  transfer); RTCP is forwarded the same way instead of the engine's own reports. RFC 4733 events are
  forwarded too (payload type mapped) when both sides negotiated them, and still reach ``on_dtmf``. A
  lost packet is not replaced (the far end conceals it). Receive statistics go on: every packet is
  counted for loss (RFC 3550 A.1/A.3), interarrival jitter is estimated on every 8th packet. A recorded
  pair also fills its jitter buffers for the recording. Routes are dropped at once when a prompt, a
  DTMF send, a supervisor override or a room change needs the mixer, and (re)made at the next tick.
  Counted in ``stats["relayed_frames"]``. A two-party room that is mixed instead (different codecs) sends
  each digit one side's RFC 4733 events carry on to the other as events of that side's payload type.
* Only the stream's payload type is decoded (learned from the first packet if set_remote has not run);
  other payload types (comfort noise, video on an audio port, ...) are counted as ``ignored``.
* RTCP: port+1 is bound; received RTCP (there or multiplexed on the RTP port) is counted and otherwise
  ignored; every ``rtcp_interval`` seconds an audio stream the ticker sends on emits a minimal SR to
  remote port+1. Relayed audio pairs and video streams pass RTCP to the partner's remote instead.
* Ticker: tick n is due at ``t0 + n * ptime`` on the engine's clock (``time.monotonic``, which is also
  the loop's clock) and a ``loop.call_at`` timer, so there is no drift. A loop runs its timers only
  between iterations, and under a heavy packet load one iteration can spend many milliseconds on I/O;
  so the packet paths also compare the clock with the next due time (the relay on one packet in 8 of
  a stream) and run due ticks themselves. When ticks run late by one tick or more, the missed ticks run
  back to back, up to ``max_catchup + 1`` per call (then the loop gets its turn); each
  catch-up tick counts in ``stats["late_ticks"]``. A gap longer than ``max_catchup`` ticks (host
  suspended, debugger) is not replayed: the oldest missed ticks are dropped (counted in ``stats["skipped_ticks"]``),
  the schedule itself stays anchored at t0, so RTP timestamps keep following real time.
* Recordings are buffered and written every ``record_flush`` ticks (and on close) to keep file I/O off
  most ticks. A recording closes itself when either of its streams closes.
"""

from .codecs import CODEC_BY_PT
from .core import MediaEngine
from .player import _Player
from .recording import Recording
from .stream import Stream

__all__ = ["CODEC_BY_PT", "MediaEngine", "Recording", "Stream"]
