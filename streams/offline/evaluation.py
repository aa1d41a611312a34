"""`interests eval`: replay a data set in event-time order through the worker's own `cf/` and
`encoders/` code, in process, and measure how well each method ranks the next item.

Protocol `prequential`: for every event of a user with history, *before* the state is updated,
each method ranks every item the user has not consumed; a hit when the event's item is in the
top k. Slices: cold items (fewer than 5 interactions before the event) and new users (their
first 5 events). The factor model is retrained every `retrain_every` events on the past only
(a periodic batch job) and users are folded in online; the hybrid's weights are refitted at the
same points on cases sampled from the window just replayed, so no target is ever scored by
weights that saw it.

The sequential model (`cf.sequence`) is retrained at the same points, each time from the last
one; `seq` is it alone, `hybrid` the blend with it (what a worker with the artifact publishes) and
`hybrid_without_seq` the same run's blend without it, its weights fitted over the grid points
that give `seq` no weight.

Protocol `loo` (RecBole's sequential split, ordering by time): each user's last interaction is
the test target and the second-last the validation target; everything else is replayed first
and the factor model is trained on it; the weights are fitted on the validation targets; the
validation events are then streamed in (no retraining) and the test targets ranked over all
items the user has not consumed.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from cf.decay import DecayConfig
from cf.factors import ALSParams, train_model
from cf.hybrid import (
    COMPONENTS,
    SEQ,
    TEXT,
    BlendPolicy,
    blend,
    blend_interests,
    fit_policy,
    grid_gains,
    new_item_picks,
    simplex_grid,
    stack,
    standardise,
)
from cf.interests import InterestConfig
from cf.neighbours import CoocConfig
from cf.ranking_metrics import RankingTally, paired_hits, ranks_of, top_indices
from cf.sequence import SequenceModel
from cf.sequence_train import SeqParams, train_sequence
from cf.signals import SequenceQuery, Signals, hybrid_inputs, sequence_scores
from cf.weights import EventWeights
from encoders import Encoder, item_document
from streams.offline.datasets import Dataset, Interaction

COLD_ITEM_MAX = 5  # an item with fewer interactions before the event is cold
NEW_USER_EVENTS = 5  # a user's first events
SINGLE = ("popularity", "decayed_popularity", "itemknn", "cooc", "text", "cf", "seq")
# text_multi: the text signal over a user's interests; hybrid_single: the blend with one vector per
# user; hybrid: what a worker publishes, the blend over each user's interests (`blend_interests`);
# hybrid_without_seq: the same blend without the sequential model, its weights fitted without it
METHODS = (*SINGLE, "text_multi", "hybrid_single", "hybrid_without_seq", "hybrid")
HYBRID = METHODS.index("hybrid")
Protocol = Literal["prequential", "loo"]
DEFAULT_SEQ = SeqParams()
F32 = npt.NDArray[np.float32]


@dataclass
class MethodResult:
    k: int
    overall: RankingTally = field(init=False)
    cold_items: RankingTally = field(init=False)
    new_users: RankingTally = field(init=False)
    recommended: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.overall, self.cold_items, self.new_users = (RankingTally(k=self.k) for _ in range(3))

    def add(self, rank: int, top: npt.NDArray[np.intp], cold: bool, new_user: bool) -> None:
        self.overall.add(rank)
        if cold:
            self.cold_items.add(rank)
        if new_user:
            self.new_users.add(rank)
        self.recommended.update(top.tolist())

    def to_json(self, n_items: int) -> dict[str, object]:
        out: dict[str, object] = dict(self.overall.summary())
        out["coverage"] = len(self.recommended) / max(n_items, 1)
        out["slices"] = {"cold_items": self.cold_items.summary(), "new_users": self.new_users.summary()}
        return out


@dataclass
class ValidationCases:
    """Past cases, each reduced to its NDCG@k under every grid weight vector, the latest
    `capacity` of them, for fitting the blend weights."""

    k: int
    capacity: int = 8000
    grid: F32 = field(default_factory=lambda: simplex_grid(len(COMPONENTS), 10))  # (G, C)
    gains: deque[F32] = field(default_factory=deque)  # each (G,)
    history: deque[int] = field(default_factory=deque)

    def add(self, z: F32, target: int, available: npt.NDArray[np.bool_], history: int) -> None:
        self.gains.append(grid_gains(z, target, available, self.grid, self.k))
        self.history.append(history)
        if len(self.gains) > self.capacity:
            self.gains.popleft()
            self.history.popleft()

    def __len__(self) -> int:
        return len(self.gains)

    def fit(self, with_seq: bool = True) -> tuple[BlendPolicy, list[dict[str, object]]]:
        """The weights, fitted on the single-vector blend (linear in them); the served blend over
        interests takes the same weights. with_seq=False: over the grid points without `seq`."""
        points = np.ones(self.grid.shape[0], bool) if with_seq else self.grid[:, SEQ] == 0  # (G,)
        gains = np.stack(self.gains).astype(np.float64)[:, points]  # (V, G')
        return fit_policy(gains, np.array(self.history), self.grid[points])


def item_vectors(encoder: Encoder, dataset: Dataset) -> F32:
    """(N, D) float32: each item's document embedded once, in dataset.items order."""
    return encoder.encode([item_document(i.title, i.text, i.tags) for i in dataset.items])


@dataclass(frozen=True)
class Case:
    """One scored event: every signal before the event, and what the metrics need."""

    components: dict[str, F32]  # each (N,)
    available: npt.NDArray[np.bool_]  # (N,) items the user has not consumed
    history: int  # events of the user before this one
    target: int
    cold: bool
    new_items: npt.NDArray[np.bool_]  # (N,) items the served list keeps slots for
    sequence: SequenceQuery | None = None  # `seq` to score with the batch, when not in components


def with_sequence(cases: list[Case]) -> None:
    """Every case's `seq` component, the queries of the batch scored together (zeros without)."""
    todo = [c for c in cases if "seq" not in c.components]
    queries = [c.sequence for c in todo if c.sequence is not None]
    scored = iter(sequence_scores(queries))
    for c in todo:
        none = np.zeros(c.available.size, np.float32)  # (N,)
        c.components["seq"] = next(scored) if c.sequence is not None else none


def score_cases(cases: list[Case], policy: BlendPolicy,
                without_seq: BlendPolicy | None = None) -> tuple[F32, F32, F32]:
    """(B, M, N) scores of every method in METHODS order (consumed items -inf), the (C, B, N)
    standardised single-vector inputs (what the weights are fitted on) and the served hybrid's
    (its text row the interest each item came from), for B cases. without_seq: the policy of
    `hybrid_without_seq` (default: `policy` with its seq weight dropped)."""
    with_sequence(cases)
    available = np.stack([c.available for c in cases])  # (B, N)
    histories = [c.history for c in cases]
    inputs = [hybrid_inputs(c.components) for c in cases]
    z = stack({name: np.stack([i[name] for i in inputs]) for name in COMPONENTS}, available)  # (C, B, N)
    single_vector = blend(z, policy, histories, available)  # (B, N)
    each = np.stack([c.components["text_each"] for c in cases], axis=1)  # (K, B, N)
    log_share = np.stack([c.components["log_share"] for c in cases], axis=1)  # (K, B)
    z_text = standardise(each, available)  # (K, B, N)
    served, _, z_served = blend_interests(z, z_text, log_share, policy, histories, available)  # (B, N)
    z_plain = z.copy()
    z_plain[SEQ] = 0.0
    plain, _, _ = blend_interests(z_plain, z_text, log_share, without_seq or policy, histories, available)
    text_multi = (z_text + log_share[:, :, None]).max(axis=0)  # (B, N)
    signals = np.stack([[c.components[name] for name in SINGLE] for c in cases])  # (B, S, N)
    blends = np.stack([text_multi, single_vector, plain, served], axis=1)  # (B, 4, N)
    scores = np.concatenate([signals, blends], axis=1)  # (B, M, N)
    return np.where(available[:, None, :], scores, -np.inf).astype(np.float32), z, z_served


class Replay:
    """The signals, fed in event order; each event's signals are read before it is learned,
    and the rankings and metrics of up to `batch` such cases are computed together, on a helper
    thread that overlaps the next events' signals (numpy releases the GIL)."""

    def __init__(self, dataset: Dataset, vectors: F32, weights: EventWeights, decay: DecayConfig,
                 space: str, k: int, train: ALSParams, new_item_slots: int = 1,
                 new_item_max: int = 1, new_item_min_z: float = 2.0, batch: int = 64,
                 cooc: CoocConfig | None = None, interests: InterestConfig | None = None,
                 sequence: SeqParams | None = None) -> None:
        self.dataset, self.k, self.train, self.batch = dataset, k, train, batch
        self.sequence = sequence  # None: no sequential model, `seq` stays 0 and out of the blend
        self.sequence_progress: Callable[[dict[str, float]], None] | None = None  # after each epoch
        self.sequence_checkpoint: Callable[[SequenceModel], None] | None = None  # each better model
        self.new_item_slots = new_item_slots  # the served list's places for new items (hybrid)
        self.new_item_max = new_item_max  # an item with fewer interactions is new
        self.new_item_min_z = new_item_min_z  # and must be this on-topic (text z-score)
        self.new_item_targets = 0  # events whose item was new
        self.new_item_hits = 0  # ... and among the hybrid's new-item picks
        self.index = {item.item_id: n for n, item in enumerate(dataset.items)}
        self.signals = Signals(list(self.index), vectors, weights, decay, space, cooc=cooc,
                               interests=interests)
        self.results = {name: MethodResult(k) for name in METHODS}
        self.policy = BlendPolicy()
        self.policy_without_seq = BlendPolicy()
        self.fits: list[dict[str, object]] = []
        self.models: list[str] = []
        self.sequence_fits: list[dict[str, object]] = []
        self.scored_ts: list[int] = []
        self._cases: list[tuple[Case, ValidationCases | None]] = []
        self._tallies = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally")  # FIFO
        self._pending: deque[Future[None]] = deque()

    def retrain(self) -> None:
        s = self.signals
        t = self.train
        model = train_model(s.histories, s.item_ids, s.vectors, s.space, t)
        s.use_model(model)
        self.models.append(model.version)
        if self.sequence is not None and any(len(h) >= 3 for h in s.histories.values()):
            seq, log = train_sequence(s.histories, s.item_ids, s.vectors, s.space, self.sequence,
                                      init=s.sequence, progress=self.sequence_progress,
                                      checkpoint=self.sequence_checkpoint)
            s.use_sequence(seq)
            self.sequence_fits.append({"version": seq.version, "events": sum(map(len, s.histories.values())),
                                       **log.to_json()})

    def refit(self, cases: ValidationCases, at_event: int) -> None:
        self.drain()
        if not len(cases):
            return
        with_seq = self.signals.sequence is not None
        self.policy, buckets = cases.fit(with_seq)
        self.policy_without_seq = cases.fit(False)[0] if with_seq else self.policy
        self.fits.append({"at_event": at_event, "cases": len(cases), "buckets": buckets,
                          "policy": self.policy.to_json(),
                          "policy_without_seq": self.policy_without_seq.to_json()})

    def case(self, x: Interaction, target: int) -> Case:
        history = self.signals.histories.get(x.user_id, [])
        available = np.ones(len(self.signals.item_ids), dtype=bool)  # (N,)
        available[history] = False
        counts = self.signals.popularity.counts  # (N,) interactions so far
        return Case(self.signals.components(x.user_id, x.ts_ms, sequence=False), available, len(history),
                    target, bool(counts[target] < COLD_ITEM_MAX), counts < self.new_item_max,
                    self.signals.sequence_query(x.user_id))

    def evaluate(self, x: Interaction, target: int, cases: ValidationCases | None) -> None:
        """Reads the signals before the event is learned; ranks and tallies in batches."""
        self._cases.append((self.case(x, target), cases))
        self.scored_ts.append(x.ts_ms)
        if len(self._cases) >= self.batch:
            self._submit()

    def _submit(self) -> None:
        """Ranks and tallies the pending cases on the helper thread (in order), while this
        thread goes on with the next events' signals; at most two batches in flight."""
        if not self._cases:
            return
        while len(self._pending) >= 2:
            self._pending.popleft().result()
        self._pending.append(self._tallies.submit(self._tally, self._cases, self.policy,
                                                  self.policy_without_seq))
        self._cases = []

    def drain(self) -> None:
        """Every case so far ranked and tallied (before a refit and at the end)."""
        self._submit()
        while self._pending:
            self._pending.popleft().result()

    def _tally(self, pending: list[tuple[Case, ValidationCases | None]], policy: BlendPolicy,
               without_seq: BlendPolicy) -> None:
        batch = [case for case, _ in pending]
        scores, z, z_served = score_cases(batch, policy, without_seq)  # (B, M, N), (C, B, N) x 2
        tops = top_indices(scores, self.k)  # (B, M, k)
        for b, (case, cases) in enumerate(pending):
            ranks = ranks_of(scores[b], case.target)  # (M,)
            new_user = case.history < NEW_USER_EVENTS
            for m, name in enumerate(METHODS):
                self.results[name].add(int(ranks[m]), tops[b, m], case.cold, new_user)
            if case.new_items[case.target]:  # a never-seen item: did the new-item picks have it?
                picks = new_item_picks(scores[b, HYBRID], z_served[TEXT, b], case.new_items, tops[b, HYBRID],
                                       self.new_item_slots, self.new_item_min_z)
                self.new_item_targets += 1
                self.new_item_hits += int(case.target in picks.tolist())
            if cases is not None:
                cases.add(z[:, b, :], case.target, case.available, case.history)

    def update(self, x: Interaction, target: int) -> None:
        self.signals.update(x.user_id, target, x.ts_ms, x.rating, x.type)

    def known(self, xs: Iterable[Interaction]) -> list[tuple[Interaction, int]]:
        return [(x, self.index[x.item_id]) for x in xs if x.item_id in self.index]


def retrain_due(n: int, every: int) -> bool:
    """Every `every` events, and early on at every/8, every/4 and every/2: a new deployment
    trains as soon as it has some data."""
    return n > 0 and (n % every == 0 or n in {every // 8, every // 4, every // 2})


def prequential(replay: Replay, retrain_every: int, cases_per_fit: int = 2000,
                progress: bool = True, scored_from_ms: int | None = None) -> None:
    """Every event is ranked before it is learned. Events before `scored_from_ms` are learned
    but neither scored nor used to fit the blend: an encoder fine-tuned on them would look
    better on them than it is (and the blend would trust it too much)."""
    events = replay.known(replay.dataset.interactions)
    stride = max(1, retrain_every // cases_per_fit)
    cases = ValidationCases(replay.k)
    for n, (x, target) in enumerate(tqdm(events, desc="prequential", unit="ev", disable=not progress,
                                         mininterval=1.0)):
        if retrain_due(n, retrain_every):
            replay.retrain()
            replay.refit(cases, n)
        if replay.signals.histories.get(x.user_id) and (scored_from_ms is None or x.ts_ms >= scored_from_ms):
            replay.evaluate(x, target, cases if n % stride == 0 else None)
        replay.update(x, target)
    replay.drain()


def held_out(events: list[tuple[Interaction, int]], last: int) -> list[set[int]]:
    """Per position from the end (1 = last), the indices of every user's event there; users
    with fewer than `last + 1` events keep them all for training."""
    per_user: dict[str, list[int]] = defaultdict(list)
    for n, (x, _) in enumerate(events):
        per_user[x.user_id].append(n)
    return [{ns[-p] for ns in per_user.values() if len(ns) > last} for p in range(1, last + 1)]


def validate(replay: Replay, events: list[tuple[Interaction, int]], valid: set[int]
             ) -> dict[str, dict[str, float]]:
    """Ranks the validation targets with the current signals, fits the blend on them, then
    streams them in (no retraining). Returns each method's validation metrics."""
    cases = ValidationCases(replay.k, capacity=max(len(valid), 1))
    validation = {name: MethodResult(replay.k) for name in METHODS}
    for n in sorted(valid):
        case = replay.case(*events[n])
        scores, z, _ = score_cases([case], replay.policy, replay.policy_without_seq)  # (1, M, N), (C, 1, N)
        cases.add(z[:, 0, :], case.target, case.available, case.history)
        ranks = ranks_of(scores[0], case.target)  # (M,)
        tops = top_indices(scores[0], replay.k)  # (M, k)
        for m, name in enumerate(METHODS):
            validation[name].add(int(ranks[m]), tops[m], case.cold, False)
    replay.refit(cases, len(events))
    for n in sorted(valid):
        replay.update(*events[n])
    return {name: r.overall.summary() for name, r in validation.items()}


def leave_one_out(replay: Replay, progress: bool = True) -> dict[str, object]:
    events = replay.known(replay.dataset.interactions)
    test, valid = held_out(events, 2)
    for n, (x, target) in enumerate(tqdm(events, desc="loo train", unit="ev", disable=not progress,
                                         mininterval=1.0)):
        if n not in test and n not in valid:
            replay.update(x, target)
    replay.retrain()
    validation = validate(replay, events, valid)
    for n in sorted(test):
        x, target = events[n]
        replay.evaluate(x, target, None)
    replay.drain()
    return dict(validation)


def run_eval(dataset: Dataset, encoder: Encoder, weights: EventWeights, decay: DecayConfig,
             protocol: Protocol = "prequential", k: int = 10, retrain_every: int | None = None,
             train: ALSParams | None = None, progress: bool = True,
             scored_from_ms: int | None = None, cooc: CoocConfig | None = None,
             interests: InterestConfig | None = None,
             sequence: SeqParams | None = DEFAULT_SEQ) -> dict[str, object]:
    started = time.monotonic()
    vectors = item_vectors(encoder, dataset)
    train = train or ALSParams()
    replay = Replay(dataset, vectors, weights, decay, encoder.version, k, train, cooc=cooc,
                    interests=interests, sequence=sequence)
    extra: dict[str, object] = {}
    with threadpool_limits(1, user_api="blas"):  # one small matvec per event: threads only cost
        if protocol == "prequential":
            every = retrain_every or max(1, len(dataset.interactions) // 10)
            prequential(replay, every, progress=progress, scored_from_ms=scored_from_ms)
            extra["retrain_every"] = every
            extra["scored_from_ms"] = scored_from_ms
        else:
            extra["validation"] = leave_one_out(replay, progress=progress)
    n_items = len(dataset.items)
    return {
        "dataset": dataset.name,
        "documents": dataset.documents.report(),
        "protocol": protocol,
        "k": k,
        "encoder": encoder.version,
        "half_life_s": decay.half_life_s,
        "events": len(dataset.interactions),
        "wall_s": round(time.monotonic() - started, 1),
        "methods": {name: r.to_json(n_items) for name, r in replay.results.items()},
        # the served hybrid (a) against the same blend on one vector per user (b), target by target
        "hybrid_vs_single": paired_hits(replay.results["hybrid"].overall.hits_over_time,
                                        replay.results["hybrid_single"].overall.hits_over_time),
        "new_item_picks": {"slots": replay.new_item_slots, "targets": replay.new_item_targets,
                           "hits": replay.new_item_hits,
                           "hr": replay.new_item_hits / max(replay.new_item_targets, 1)},
        # the served hybrid (a) against the same blend without the sequential model (b)
        "hybrid_vs_without_seq": paired_hits(replay.results["hybrid"].overall.hits_over_time,
                                             replay.results["hybrid_without_seq"].overall.hits_over_time),
        "hybrid_fits": replay.fits,
        "cf_models": replay.models,
        "cf_params": asdict(train),
        "seq_params": None if sequence is None else asdict(sequence),
        "seq_fits": replay.sequence_fits,
        **extra,
        "timeline": {"ts_ms": replay.scored_ts,
                     "hits": {name: r.overall.hits_over_time for name, r in replay.results.items()}},
    }
