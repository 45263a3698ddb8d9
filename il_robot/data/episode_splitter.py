"""Cuts a stream of stamped demo messages into one bag per episode, by stamp and episode id.

ROS-free; the recorder node feeds it what it receives, in whatever order the
executor takes it. The rules:

- An episode is announced on /sim/episode (episode_id, start_time) and ends at
  start_time + duration from its result. A result goes to the bag of the episode
  with its episode_id, never to whichever bag happens to be open: the next
  episode's announcement may well be taken before the last one's result.
- A message goes to the episode whose [start, end] holds its header stamp. While
  that is not known yet (no result), it waits, at most `hold` seconds of stamps,
  then goes by the next episode's start; bags stay open meanwhile, two at a time
  if need be. The next start alone does not settle it: the simulator resets
  between the end and the next start, and what it sends meanwhile is in no episode.
- A bag closes once it holds its result and every message the simulator says it
  published in the episode (and the action answering the last frame). Short of
  that, it waits while a topic it lacks is still coming in stamped inside the
  episode (a busy recorder works through a backlog, the fast topic last); it
  gives up once each such topic has moved past the episode's end (the rest is
  lost), or `grace` seconds of the recorder's own running time after the topic
  was last heard. It is complete only when it holds the result and exactly the
  published counts; otherwise it is kept (no data is thrown away), marked
  incomplete in its metadata and named *_incomplete.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from il_robot import topics
from il_robot.data.bag_format import (
    INCOMPLETE_SUFFIX,
    RECORDING_COMPLETE,
    RECORDING_INCOMPLETE,
    RECORDING_KEY,
    RECORDING_PROBLEMS_KEY,
)
from il_robot.data.bag_writer import EpisodeBagWriter

HOLD = 2.0          # s of stamps a message may wait for its episode to be known
CLOSE_GRACE = 2.0   # s (wall, while the recorder runs) a bag waits for missing messages after its last news
STALL = 0.5         # s: a longer gap between the recorder's own calls (its timer ticks every 0.2 s) is time
                    # it did not run (a starved process): not silence of the streams, whose messages wait queued
EPS = 1e-6          # s: stamps are whole ns, physics steps 2 ms apart
DEDUP_DEPTH = 8     # re-sends (lockstep retries) repeat one of the last few stamps of their topic
# Topics answering each camera frame, stamped with it: a bag waits for their answer to its last frame.
FRAME_ANSWERS = (topics.TIP_VELOCITY, topics.DESIRED_MOTION, topics.TELEOP_CMD)
# ... and those answering frames only while an operator has taken over from the policy: awaited for the
# last frame when they answered the frame before it.
WHILE_TAKEN_OVER = (topics.CORRECTION,)
_WAIT = object()    # a message whose episode is not known yet


@dataclass
class ClosedBag:
    path: Path
    episode_id: int | None
    complete: bool
    problems: list[str]
    counts: dict[str, int]


class Recording:
    """One episode's open bag and what is known of the episode so far."""

    def __init__(self, info: dict, bag: EpisodeBagWriter, now: float):
        self.info = info
        self.episode_id = info.get("episode_id")
        self.start = float(info["start_time"])
        self.bag = bag
        self.end: float | None = None       # from the result
        self.cut: float | None = None       # the next episode's start, once announced
        self.result: dict | None = None
        self.last_stamp: dict[str, float] = {}
        self.recent: dict[str, deque] = {}  # per topic, the last stamps written (re-sends are dropped)
        self.activity = now

    def seen(self, topic: str, stamp: float) -> bool:
        """A re-send (lockstep retry, one frame answered twice) of a message already written."""
        return any(abs(s - stamp) < EPS for s in self.recent.get(topic, ()))

    def write(self, stamp: float, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        if self.seen(topic, stamp):
            return   # one copy per bag
        recent = self.recent.setdefault(topic, deque(maxlen=DEDUP_DEPTH))
        recent.append(stamp)
        self.bag.write(topic, msgtype, t_ns, data)
        self.last_stamp[topic] = max(self.last_stamp.get(topic, -math.inf), stamp)

    def published(self) -> dict[str, int]:
        return dict((self.result or {}).get("published") or {})

    def differences(self) -> tuple[dict[str, int], dict[str, int]]:
        """(missing, extra) per topic against the simulator's published counts."""
        published, stored = self.published(), self.bag.counts
        missing = {t: n - stored.get(t, 0) for t, n in published.items() if stored.get(t, 0) < n}
        extra = {t: stored[t] - n for t, n in published.items() if stored.get(t, 0) > n}
        return missing, extra

    def unanswered(self) -> list[str]:
        """Frame-answering topics in the bag whose answer to the last frame is not in yet."""
        if topics.IMAGE not in self.last_stamp:
            return []
        last = self.last_stamp[topics.IMAGE]
        waiting = [t for t in FRAME_ANSWERS if t in self.bag.counts and self.last_stamp.get(t, -math.inf) < last - EPS]
        before = [stamp for stamp in self.recent.get(topics.IMAGE, ()) if stamp < last - EPS]
        if before:
            waiting += [t for t in WHILE_TAKEN_OVER
                        if max(before) - EPS <= self.last_stamp.get(t, -math.inf) < last - EPS]
        return waiting

    def all_in(self) -> bool:
        """Result, every published message, and the answers to the last frame are in."""
        return self.result is not None and not any(self.differences()) and not self.unanswered()

    def label(self) -> str:
        return f"episode {self.episode_id}"


class EpisodeSplitter:
    def __init__(self, open_bag: Callable[[dict], EpisodeBagWriter], log, hold: float = HOLD,
                 grace: float = CLOSE_GRACE, clock: Callable[[], float] = time.monotonic,
                 custom_data: dict[str, str] | None = None):
        self.open_bag = open_bag     # episode info -> a new bag
        self.log = log               # .info / .warning / .error (an rclpy logger)
        self.custom_data = dict(custom_data or {})   # written into every bag's metadata (a correction round)
        self.hold, self.grace, self.wall = hold, grace, clock
        self._last_call, self._stalled = None, 0.0
        self.recordings: list[Recording] = []   # open bags, by start
        self._latest: Recording | None = None   # the episode announced last, open or closed
        self.pending: deque = deque()           # (stamp, topic, msgtype, t_ns, data), episode not known yet
        self.newest = -math.inf
        self.topic_newest: dict[str, float] = {}   # per stream topic, the latest stamp received
        self.topic_heard: dict[str, float] = {}    # ... and when (wall, `clock`)
        self.closed: list[ClosedBag] = []
        self._gone: deque = deque(maxlen=32)    # closed recordings, to tell late messages from re-sends
        self._late_logged: set = set()
        # Results of episodes not announced yet: the result and the next announcement are on two
        # topics, and a busy recorder may take the result first. Kept (the last few) until announced.
        self._early_results: dict = {}
        self.dropped = 0                        # messages that belong to no episode (between episodes)

    def clock(self) -> float:
        """Wall time the recorder was running: gaps over STALL between its calls are left out, so a
        recorder starved for seconds works through its queued backlog before it gives up on a stream."""
        now = self.wall()
        if self._last_call is not None and now - self._last_call > STALL:
            self._stalled += now - self._last_call - STALL
        self._last_call = now
        return now - self._stalled

    # -- input ------------------------------------------------------------------------------
    def announce(self, info: dict, msgtype: str, t_ns: int, data: bytes) -> Recording | None:
        """/sim/episode. Raises ValueError for an announcement without a usable start_time."""
        try:
            start = float(info["start_time"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{topics.EPISODE} without a numeric start_time: {json.dumps(info)[:200]}") from None
        if not math.isfinite(start):
            raise ValueError(f"{topics.EPISODE}: start_time {start} is not finite")
        episode_id = info.get("episode_id")
        if any(r.episode_id == episode_id and abs(r.start - start) < EPS for r in self.recordings) \
                or any(g.episode_id == episode_id and abs(g.start - start) < EPS for g in self._gone):
            return None   # heard twice (a late-joining subscription's history)
        now = self.clock()
        if self.recordings and start < self.recordings[-1].start - EPS:
            self.log.warning(f"episode {episode_id} starts at {start:.3f} s, before episode "
                             f"{self.recordings[-1].episode_id} ({self.recordings[-1].start:.3f} s): the "
                             "simulator's clock went back (restarted?); closing the open bags")
            self._place(final=True)
            for rec in list(self.recordings):
                self._close(rec, "the simulator's clock went back")
        if self.recordings and self.recordings[-1].cut is None:
            prev = self.recordings[-1]
            prev.cut, prev.activity = start, now
        rec = Recording(info, self.open_bag(info), now)
        rec.bag.write(topics.EPISODE, msgtype, t_ns, data)
        self.recordings.append(rec)
        self._latest = rec
        self._place()
        early = self._early_results.pop(episode_id, None)
        if early is not None:
            self.result(*early)
        for stale in [i for i in self._early_results if isinstance(episode_id, int) and i < episode_id]:
            info_stale = self._early_results.pop(stale)[0]
            self.log.warning(f"result of episode {stale} matches no bag (the episode began before the "
                             f"recorder did): not stored: {json.dumps(info_stale)[:300]}")
        return rec

    def result(self, info: dict, msgtype: str, t_ns: int, data: bytes) -> Recording | None:
        """/sim/episode_result, matched to its bag by episode_id."""
        episode_id = info.get("episode_id")
        rec = next((r for r in reversed(self.recordings) if episode_id is not None and r.episode_id == episode_id),
                   None)
        if rec is None:
            latest = self._latest.episode_id if self._latest is not None else None
            if isinstance(episode_id, int) and (not isinstance(latest, int) or episode_id > latest):
                self._early_results[episode_id] = (info, msgtype, t_ns, data)   # its announcement comes next
                while len(self._early_results) > 8:
                    self._early_results.pop(min(self._early_results))
                return None
            if not any(g.episode_id == episode_id for g in self._gone):
                self.log.warning(f"result of episode {episode_id} matches no open bag (the episode began "
                                 f"before the recorder did): not stored: {json.dumps(info)[:300]}")
            return None
        if rec.result is not None:
            if rec.result != info:
                self.log.error(f"episode {episode_id}: a second, different result ignored: {json.dumps(info)[:300]}")
            return None
        rec.bag.write(topics.EPISODE_RESULT, msgtype, t_ns, data)
        rec.result = info
        try:
            rec.end = rec.start + float(info["duration"])
        except (KeyError, TypeError, ValueError):
            self.log.error(f"episode {episode_id}: result without a numeric duration; the episode is taken "
                           f"to run until the next one starts")
        rec.activity = self.clock()
        self._place()
        return rec

    def message(self, stamp: float, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        """A stamped stream message (joint states, images, actions, ...)."""
        self.newest = max(self.newest, stamp)
        self.topic_newest[topic] = max(self.topic_newest.get(topic, -math.inf), stamp)
        self.topic_heard[topic] = self.clock()
        self._put((stamp, topic, msgtype, t_ns, data), final=False)
        # Messages come roughly in stamp order: the oldest waiting ones are the first to be due.
        while self.pending and self.pending[0][0] <= self.newest - self.hold:
            self._put(self.pending.popleft(), final=True)
        self.close_finished()

    def to_running(self, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        """A latched message that holds for the episode under way (who is operating)."""
        for rec in self.recordings:
            if rec.result is None and rec.cut is None:
                rec.bag.write(topic, msgtype, t_ns, data)

    # -- routing ----------------------------------------------------------------------------
    def _home(self, stamp: float, final: bool):
        """The recording a stamp belongs to, _WAIT while that is not known yet, None for none."""
        for rec in reversed(self.recordings):
            if stamp < rec.start - EPS:
                continue
            if rec.end is not None:
                if stamp <= rec.end + EPS:
                    return rec
            elif rec.cut is not None:
                if stamp < rec.cut - EPS:
                    # Before the next start, but the result may still end the episode earlier: the
                    # simulator resets between them, and what it sends meanwhile belongs to neither.
                    return rec if final or rec.result is not None else _WAIT
            else:
                return rec if final else _WAIT   # a reset may still cut the episode short before this stamp
            break   # past this episode: no earlier one holds it
        # After every episode announced so far (open or closed): one not announced yet, or none.
        latest = self._latest
        beyond = latest is None or stamp > self._limit(latest) + EPS
        return _WAIT if beyond and not final else None

    def _put(self, item, final: bool) -> None:
        home = self._home(item[0], final)
        if home is _WAIT:
            self.pending.append(item)
        elif home is None:
            self._drop(item)
        else:
            home.write(*item)
            home.activity = self.clock()

    def _place(self, final: bool = False) -> None:
        """Route every waiting message whose episode is known now."""
        waiting, self.pending = self.pending, deque()
        for item in waiting:
            self._put(item, final or item[0] <= self.newest - self.hold)
        self.close_finished()

    def _drop(self, item) -> None:
        stamp, topic = item[0], item[1]
        gone = next((g for g in self._gone if g.start - EPS <= stamp <= self._limit(g) + EPS), None)
        if gone is None:
            self.dropped += 1   # between episodes, or before the first one the recorder heard of
            return
        if gone.seen(topic, stamp):
            return   # a re-send of a message the bag holds
        if gone.episode_id not in self._late_logged:
            self._late_logged.add(gone.episode_id)
            self.log.error(f"episode {gone.episode_id}: a message on {topic} stamped {stamp:.3f} s came after "
                           "its bag was closed; not stored (late messages of this episode are not logged again)")

    @staticmethod
    def _limit(rec: Recording) -> float:
        """The last stamp an episode may hold, as far as known."""
        return rec.end if rec.end is not None else rec.cut if rec.cut is not None else math.inf

    # -- closing ----------------------------------------------------------------------------
    def close_finished(self) -> None:
        """Close the bags that hold everything, and those whose missing messages are not coming."""
        now = self.clock()
        for rec in list(self.recordings):
            if rec.all_in():
                self._close(rec, "")
            elif rec.result is not None:
                if all(self._given_up(rec, topic, now) for topic in self._awaited(rec)):
                    self._close(rec, "")
            elif rec.cut is not None and now - rec.activity > self.grace:
                self._claim_waiting(rec)
                self._close(rec, "the next episode began before this one ended (a reset?)")

    def _claim_waiting(self, rec: Recording) -> None:
        """A bag closing without a result: the messages still waiting inside [start, cut) are its own."""
        waiting, self.pending = self.pending, deque()
        for item in waiting:
            if rec.start - EPS <= item[0] < rec.cut - EPS:
                rec.write(*item)
            else:
                self.pending.append(item)

    def _awaited(self, rec: Recording) -> list[str]:
        """Topics the bag still lacks messages of (the action answering the last frame included)."""
        return list(rec.differences()[0]) + rec.unanswered()

    def _given_up(self, rec: Recording, topic: str, now: float) -> bool:
        """Nothing more of `topic` will come for this episode: its stream is past the episode's end
        (messages of one topic come in order), or silent for `grace` seconds."""
        end = rec.end if rec.end is not None else rec.cut
        past = end is not None and self.topic_newest.get(topic, -math.inf) > end + EPS
        silent = now - max(self.topic_heard.get(topic, -math.inf), rec.activity) > self.grace
        return past or silent

    def close_all(self, why: str) -> None:
        """Shutdown: route what can be routed, then close every bag (those without a result incomplete)."""
        self._place(final=True)
        for item in self.pending:
            self._drop(item)
        self.pending.clear()
        for rec in list(self.recordings):
            self._close(rec, why)

    def _close(self, rec: Recording, why: str) -> ClosedBag:
        problems = []
        if rec.result is None:
            problems.append(f"no result ({why})" if why else "no result")
        else:
            missing, extra = rec.differences()
            if missing:
                problems.append(f"missing vs published: {missing}")
            if extra:
                problems.append(f"more than published: {extra}")
            if not rec.published():
                self.log.warning(f"{rec.label()}: the result gives no published counts; nothing to check against")
        custom = {**self.custom_data, RECORDING_KEY: RECORDING_INCOMPLETE if problems else RECORDING_COMPLETE}
        if problems:
            custom[RECORDING_PROBLEMS_KEY] = "; ".join(problems)
        self.recordings.remove(rec)
        self._gone.append(rec)
        path = rec.bag.close(custom)
        if problems:
            flagged, n = path.with_name(path.name + INCOMPLETE_SUFFIX), 1
            while flagged.exists():
                n += 1
                flagged = path.with_name(f"{path.name}_{n}{INCOMPLETE_SUFFIX}")
            path = path.rename(flagged)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(rec.bag.counts.items()))
        if problems:
            self.log.error(f"wrote {path.name} ({rec.label()}) INCOMPLETE: {'; '.join(problems)}; {counts}")
        else:
            self.log.info(f"wrote {path.name} ({rec.label()}): {counts} (all published messages stored)")
        closed = ClosedBag(path, rec.episode_id, not problems, problems, dict(rec.bag.counts))
        self.closed.append(closed)
        return closed
