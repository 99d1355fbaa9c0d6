"""The vectorized conference mixer against a naive per-sample reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from media.mixer import FRAME, Mixer, default_hears, mix_mask, mix_rooms

SAMPLES = 16   # hypothesis tests use short frames so the naive reference stays fast; the kernels don't care

sample = st.one_of(st.sampled_from([-32768, 32767, 0]), st.integers(-32768, 32767))


def ref_mix(frames, hears):
    L, n = len(frames), len(frames[0])
    out = []
    for i in range(L):
        row = []
        for k in range(n):
            s = 0
            for j in range(L):
                if hears[i][j]:
                    s += int(frames[j][k])
            row.append(max(-32768, min(32767, s)))
        out.append(row)
    return out


def ref_default(rooms):
    return [[rooms[i] >= 0 and rooms[i] == rooms[j] and i != j for j in range(len(rooms))]
            for i in range(len(rooms))]


@st.composite
def scenario(draw, n=SAMPLES):
    L = draw(st.integers(1, 12))
    frames = draw(arrays(np.int16, (L, n), elements=sample))
    rooms = draw(st.lists(st.integers(-1, 3), min_size=L, max_size=L))
    return frames, rooms


@given(scenario())
def test_mix_rooms_matches_reference(sc):
    frames, rooms = sc
    got = mix_rooms(frames, np.array(rooms))
    assert got.dtype == np.int16
    assert got.tolist() == ref_mix(frames.tolist(), ref_default(rooms))
    assert default_hears(np.array(rooms)).tolist() == ref_default(rooms)


@given(scenario(), st.data())
def test_mix_mask_matches_reference(sc, data):
    frames, _ = sc
    L = frames.shape[0]
    hears = data.draw(arrays(bool, (L, L)))
    assert mix_mask(frames, hears).tolist() == ref_mix(frames.tolist(), hears.tolist())


@given(scenario(), st.data())
@settings(max_examples=150)
def test_mixer_with_overrides_matches_reference(sc, data):
    frames, rooms = sc
    L = frames.shape[0]
    m = Mixer(capacity=2, frame=SAMPLES)        # small capacity: growth is exercised too
    ids = [f"leg{i}" for i in range(L)]
    for i, r in zip(ids, rooms):
        m.add_leg(i, None if r < 0 else f"room{r}")
    hears = ref_default(rooms)
    pairs = data.draw(st.lists(st.tuples(st.integers(0, L - 1), st.integers(0, L - 1), st.booleans()),
                               max_size=10))
    for i, j, v in pairs:
        m.set_hears(ids[i], ids[j], v)
        hears[i][j] = v
    assert m.hears_matrix().tolist() == hears
    rows = np.zeros((L, SAMPLES), np.int16)
    for k, leg in enumerate(ids):
        rows[m.index(leg)] = frames[k]
    got = m.mix(rows)
    want = ref_mix(frames.tolist(), hears)
    assert [got[m.index(leg)].tolist() for leg in ids] == want


def test_saturation_both_ways():
    frames = np.array([[32767] * FRAME, [32767] * FRAME, [-32768] * FRAME, [-32768] * FRAME, [1] * FRAME],
                      dtype=np.int16)
    out = mix_rooms(frames, np.array([0, 0, 1, 1, 0]))
    assert out[0, 0] == 32767 and out[4, 0] == 32767          # 32767 + 32767 and 32767*2 clip high
    assert out[2, 0] == -32768 and out[3, 0] == -32768
    frames[4] = -32768
    assert mix_rooms(frames, np.array([0, 0, 0, 0, 0]))[4, 0] == 32767 + 32767 - 32768 - 32768


def _call(m, names):
    for n in names:
        m.add_leg(n, "call")


def _heard(m, names):
    """{listener: set of speakers} from the effective mask."""
    h = m.hears_matrix()
    return {a: {b for b in names if h[m.index(a), m.index(b)]} for a in names}


def test_listen_supervisor_hears_both_heard_by_none():
    m = Mixer()
    _call(m, ["agent", "cust"])
    m.add_leg("sup")                       # not in the room: only the mask brings them in
    m.listen("sup", "agent", "cust")
    names = ["agent", "cust", "sup"]
    assert _heard(m, names) == {"agent": {"cust"}, "cust": {"agent"}, "sup": {"agent", "cust"}}
    frames = np.zeros((3, FRAME), np.int16)
    frames[m.index("agent")], frames[m.index("cust")], frames[m.index("sup")] = 100, 20, 3
    out = m.mix(frames)
    assert out[m.index("sup"), 0] == 120
    assert out[m.index("agent"), 0] == 20 and out[m.index("cust"), 0] == 100


def test_listen_when_supervisor_shares_the_room():
    m = Mixer()
    _call(m, ["agent", "cust", "sup"])
    m.listen("sup", "agent", "cust")
    assert _heard(m, ["agent", "cust", "sup"]) == {"agent": {"cust"}, "cust": {"agent"},
                                                  "sup": {"agent", "cust"}}


def test_whisper_agent_hears_supervisor_customer_does_not():
    m = Mixer()
    _call(m, ["agent", "cust"])
    m.add_leg("sup")
    m.whisper("sup", "agent", "cust")
    assert _heard(m, ["agent", "cust", "sup"]) == {"agent": {"cust", "sup"}, "cust": {"agent"},
                                                  "sup": {"agent", "cust"}}
    frames = np.zeros((3, FRAME), np.int16)
    frames[m.index("sup")] = 7
    out = m.mix(frames)
    assert out[m.index("agent"), 5] == 7 and out[m.index("cust"), 5] == 0


def test_barge_all_three_hear_each_other_and_modes_switch():
    m = Mixer()
    _call(m, ["agent", "cust"])
    m.add_leg("sup")
    names = ["agent", "cust", "sup"]
    m.whisper("sup", "agent", "cust")
    m.barge("sup", "agent", "cust")
    assert _heard(m, names) == {"agent": {"cust", "sup"}, "cust": {"agent", "sup"}, "sup": {"agent", "cust"}}
    m.listen("sup", "agent", "cust")       # back to listening only
    assert _heard(m, names)["agent"] == {"cust"} and _heard(m, names)["cust"] == {"agent"}
    m.clear_hears("sup")
    assert _heard(m, names)["sup"] == set()


def test_leg_lifecycle_reuses_rows_and_clears_state():
    m = Mixer(capacity=2)
    assert m.add_leg("a", 1) == 0 and m.add_leg("b", 1) == 1 and m.add_leg("c", 1) == 2
    m.set_hears("a", "b", False)
    m.remove_leg("b")
    with pytest.raises(KeyError):
        m.index("b")
    assert m.add_leg("d", 2) == 1            # lowest free row reused
    assert _heard(m, ["a", "c", "d"]) == {"a": {"c"}, "c": {"a"}, "d": set()}   # old override gone
    m.set_room("d", 1)
    assert _heard(m, ["a", "c", "d"])["d"] == {"a", "c"}
    with pytest.raises(KeyError):
        m.add_leg("a", 1)
    m.frames[m.index("a")] = 5
    assert m.mix()[m.index("d"), 0] == 5     # default uses the mixer's own frame buffer
    m.remove_leg("c")
    m.remove_leg("d")
    assert m.mix().shape == (1, FRAME)


@given(st.lists(st.integers(-1, 4), min_size=1, max_size=40), st.sampled_from(["PCMU", "PCMA"]),
       st.integers(0, 2**32 - 1), st.sampled_from([2, 4, 16]))
@settings(max_examples=80)
def test_codec_room_mixer_matches_decode_mix_encode(rooms, codec, seed, chunk):
    from media import g711
    from media.mixer import CodecRoomMixer, RoomLayout
    rng = np.random.default_rng(seed)
    L = len(rooms)
    codes = rng.integers(0, 256, (L, SAMPLES), dtype=np.uint8)
    rooms = np.array(rooms)
    lay = RoomLayout(rooms)
    assert sorted(lay.order.tolist() + lay.outside.tolist()) == list(range(L))
    for k, a, b in lay.groups:      # every group is whole rooms of k legs, each room contiguous
        r = rooms[lay.order[a:b]].reshape(-1, k)
        assert (r == r[:, :1]).all() and len(set(r[:, 0].tolist())) == r.shape[0]
        assert all(np.sum(rooms == x) == k for x in r[:, 0])
    pcm = g711.decode(codes.reshape(-1), codec).reshape(L, SAMPLES)
    want = np.frombuffer(g711.encode(mix_rooms(pcm, rooms), codec), np.uint8).reshape(L, SAMPLES)
    got = CodecRoomMixer(frame=SAMPLES, chunk=chunk).run(codes[lay.order], lay.groups, codec)
    assert got.tolist() == want[lay.order].tolist()


@given(st.lists(st.integers(-1, 5), min_size=1, max_size=30), st.sampled_from(["PCMU", "PCMA"]),
       st.integers(0, 2**32 - 1), st.lists(st.integers(0, 29), max_size=8))
@settings(max_examples=60)
def test_mixer_mix_codes_equals_decode_mix_encode(rooms, codec, seed, removed):
    """The engine's G.711-in/G.711-out path gives what the general int16 path gives, for every leg in
    a room, before and after legs come and go (rows are reused, the layout rebuilt)."""
    from media import g711
    rng = np.random.default_rng(seed)
    m = Mixer(capacity=4)
    legs = [f"leg{i}" for i in range(len(rooms))]
    for leg, room in zip(legs, rooms):
        m.add_leg(leg, None if room < 0 else room)
    for i in sorted(set(removed)):
        if i < len(legs) and legs[i] is not None:
            m.remove_leg(legs[i])
            legs[i] = None
    present = [leg for leg in legs if leg is not None]
    if not present:
        return
    rows = np.array([m.index(leg) for leg in present])
    codes = rng.integers(0, 256, (m.frames.shape[0], FRAME), dtype=np.uint8)
    h = int(rows.max()) + 1
    m.frames[:h] = g711.decode(codes[:h].reshape(-1), codec).reshape(h, FRAME)
    want = np.frombuffer(g711.encode(m.mix(), codec), np.uint8).reshape(-1, FRAME)
    got = m.mix_codes(codes, codec)
    in_room = [r for leg, r in zip(present, rows) if m._room[r] >= 0]
    assert got[in_room].tolist() == want[in_room].tolist()
    # Legs come and go after a mix: rows are reused and the layout is rebuilt.
    m.remove_leg(present[0])
    m.add_leg("late", rooms[0] if rooms[0] >= 0 else None)
    if len(present) > 1:
        m.set_room(present[-1], 7)
    rows2 = [m.index(leg) for leg in [*present[1:], "late"]]
    h2 = m._high
    m.frames[:h2] = g711.decode(codes[:h2].reshape(-1), codec).reshape(h2, FRAME)
    want2 = np.frombuffer(g711.encode(m.mix(), codec), np.uint8).reshape(-1, FRAME)
    got2 = m.mix_codes(codes, codec)
    in_room2 = [r for r in rows2 if m._room[r] >= 0]
    assert got2[in_room2].tolist() == want2[in_room2].tolist()


def test_mix_codes_refuses_overrides():
    m = Mixer()
    for leg in ("sup", "agent", "cust"):
        m.add_leg(leg, 1)
    m.listen("sup", "agent", "cust")
    with pytest.raises(ValueError):
        m.mix_codes(np.zeros((m.frames.shape[0], FRAME), np.uint8), "PCMU")
