from collections import Counter
from hypothesis import given, settings, strategies as st
from tests.core.rooms.test_invariants import step, RoomPolicy, open_room, tick, apply, RoomRuleError
ok = Counter(); bad = Counter(); maxstage = Counter()
@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step, max_size=60))
def test_stats(steps):
    state = open_room("r", host_id="h", host_name="Hana", now=0.0, policy=RoomPolicy(max_stage=4, host_grace_seconds=20))
    now = 0.0
    for actor, cmd, delay in steps:
        now += delay
        state, _ = tick(state, now)
        try:
            state, _ = apply(state, actor, cmd, now); ok[type(cmd).__name__] += 1
        except RoomRuleError as e:
            bad[e.code] += 1
        maxstage[len(state.stage)] += 1
def test_print():
    print(ok); print(bad); print(maxstage)
