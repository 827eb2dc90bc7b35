//! A run's measurements as plain data ([`Record`]): everything the judge and the summary are
//! computed from, and [`conclude`], the one place they are. A run builds its record from its
//! collector and oracle; `gauntlet merge` builds one from the shards' records by adding them
//! ([`Record::add`]). Shard results are a record serialised ([`ShardFile`], in `shard.json`),
//! histograms exact (HdrHistogram V2, deflated, base64).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::summary::{EventFacts, Inputs, Latency, OracleInputs, ShardsSummary, Summary, WebSocketSummary};
use crate::conformance::{HeaderFindings, UpstreamCounts};
use crate::judge::{self, Judgement, ReplayEvidence};
use crate::metrics::{Causes, Cell, CheckCauses, Counts, Dims, Saturation, Window, Windows, histogram};
use crate::plan::Plan;
use crate::scenario::Scenario;

/// Schema of a shard result.
pub const SHARD_SCHEMA: &str = "gauntlet.shard/v1";
/// Most shards a run may have.
pub const MAX_SHARDS: u32 = 10_000;

/// What the oracle upstream saw, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OracleRecord {
    /// Requests received.
    pub received: u64,
    /// Without a valid tag.
    pub untagged: u64,
    /// Tagged by another run.
    pub foreign: u64,
    /// `((phase, condition, check), counts)` for every cell with an arrival.
    pub cells: Vec<((usize, usize, usize), UpstreamCounts)>,
    /// Header findings per check.
    pub headers: Vec<HeaderFindings>,
}

impl OracleRecord {
    /// Adds `o` (another oracle's findings for the same run) into `self`.
    pub fn add(&mut self, o: &OracleRecord) {
        self.received += o.received;
        self.untagged += o.untagged;
        self.foreign += o.foreign;
        for (k, c) in &o.cells {
            match self.cells.iter_mut().find(|(x, _)| x == k) {
                Some((_, mine)) => mine.add(c),
                None => self.cells.push((*k, *c)),
            }
        }
        self.cells.sort_by_key(|(k, _)| *k);
        if self.headers.len() < o.headers.len() {
            self.headers.resize_with(o.headers.len(), HeaderFindings::default);
        }
        for (a, b) in self.headers.iter_mut().zip(&o.headers) {
            a.add(b);
        }
    }
}

/// WebSocket sessions: the summary's counters and the exact round-trip histogram.
#[derive(Debug, Clone)]
pub struct WsRecord {
    /// Counters (its `message_rtt_ms` is drawn from `rtt`).
    pub summary: WebSocketSummary,
    /// Round trip per message, µs.
    pub rtt: Histogram<u64>,
}

impl WsRecord {
    fn add(&mut self, o: &WsRecord) {
        let (a, b) = (&mut self.summary, &o.summary);
        a.sessions += b.sessions;
        a.completed += b.completed;
        a.closed_by_peer += b.closed_by_peer;
        a.echo_lost += b.echo_lost;
        // Shards run side by side: at most the sum of their peaks were open at once.
        a.max_concurrent += b.max_concurrent;
        a.messages += b.messages;
        a.echoes += b.echoes;
        a.stopped += b.stopped;
        a.memory_per_session_kb = a.memory_per_session_kb.max(b.memory_per_session_kb);
        let _ = self.rtt.add(&o.rtt);
        self.summary.message_rtt_ms = Latency::of(&self.rtt);
    }
}

/// A run's measurements.
#[derive(Debug, Clone)]
pub struct Record {
    /// Run id (in every tag).
    pub run_id: String,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Protocol name.
    pub protocol: String,
    /// Stopped early.
    pub interrupted: bool,
    /// The command line, for reproduction.
    pub command: String,
    /// Client-side cells by flat key.
    pub cells: Vec<Option<Box<Cell>>>,
    /// Error causes per check.
    pub causes: Vec<CheckCauses>,
    /// Rate-limit windows of `limit` checks.
    pub windows: Windows,
    /// Saturation per phase.
    pub saturation: Vec<Saturation>,
    /// Generator lag per phase.
    pub lag: Vec<Histogram<u64>>,
    /// How long each phase ran (`None`: never started).
    pub spans: Vec<Option<Duration>>,
    /// How long the run ran.
    pub run_span: Duration,
    /// Per timed event: fired, recovery.
    pub events: Vec<EventFacts>,
    /// The oracle's findings, when an oracle ran.
    pub oracle: Option<OracleRecord>,
    /// HTTP/3 refusals by close code.
    pub quic_refusals: BTreeMap<String, u64>,
    /// `auto` followed Alt-Svc to HTTP/3.
    pub followed_h3: bool,
    /// WebSocket sessions.
    pub websocket: Option<WsRecord>,
    /// Replay phases: (phase, what its capture gave).
    pub replays: Vec<(String, crate::replay::Summary)>,
    /// A merged sharded run: its shards.
    pub shards: Option<ShardsSummary>,
}

/// A judged run: the judgement, the summary rendering it, the per-scope histograms.
pub struct Concluded {
    /// The judgement.
    pub judgement: Judgement,
    /// `summary.json`.
    pub summary: Summary,
    /// `histograms.hlog`'s histograms.
    pub histograms: Vec<(String, Histogram<u64>)>,
}

/// Key dimensions of `s` and its plan.
pub fn dims(s: &Scenario, plan: &Plan) -> Dims {
    Dims { phases: plan.phases.len(), conditions: plan.conditions.len(), checks: s.checks.len() }
}

/// Judges a run's record and renders the summary: the same call for a run on one machine and
/// for a merged sharded run.
pub fn conclude(s: &Scenario, plan: &Plan, r: &Record) -> Concluded {
    let dims = dims(s, plan);
    let replays: Vec<ReplayEvidence> = r
        .replays
        .iter()
        .map(|(phase, x)| ReplayEvidence {
            phase: phase.clone(),
            replayed: x.replayed,
            unreplayable: x.unreplayable.iter().map(|(u, n)| (u.describe().to_string(), *n)).collect(),
            error: x.error.clone(),
        })
        .collect();
    let judgement = judge::judge(&judge::Evidence {
        scenario: s,
        plan,
        dims,
        cells: &r.cells,
        causes: &r.causes,
        upstream: r.oracle.as_ref().map(|o| judge::Upstream {
            cells: &o.cells,
            headers: &o.headers,
            untagged: o.untagged,
        }),
        windows: &r.windows,
        saturation: &r.saturation,
        spans: &r.spans,
        run_span: r.run_span,
        interrupted: r.interrupted,
        max_in_flight: s.target.max_in_flight,
        replays: &replays,
        shards: r.shards.as_ref().map(|x| (x.count, &x.missing[..], &x.incomplete[..])),
    });
    let inputs = Inputs {
        scenario: s,
        plan,
        dims,
        lag: &r.lag,
        causes: &r.causes,
        spans: &r.spans,
        run_span: r.run_span,
        started_at: r.started_at,
        run_id: &r.run_id,
        protocol: &r.protocol,
        interrupted: r.interrupted,
        command: r.command.clone(),
        oracle: r.oracle.as_ref().map(|o| OracleInputs {
            received: o.received,
            untagged: o.untagged,
            foreign: o.foreign,
            headers: &o.headers,
        }),
        events: &r.events,
        quic_refusals: r.quic_refusals.clone(),
        websocket: r.websocket.as_ref().map(|w| w.summary.clone()),
        replays: &r.replays,
        followed_h3: r.followed_h3,
    };
    let mut summary = Summary::new(&inputs, &judgement);
    summary.shards = r.shards.clone();
    let histograms = super::summary::histograms(&inputs, &judgement);
    Concluded { judgement, summary, histograms }
}

impl Record {
    /// An empty record of `dims` (what `merge` adds shards into).
    pub fn empty(dims: Dims, events: usize) -> Self {
        Record {
            run_id: String::new(),
            started_at: SystemTime::UNIX_EPOCH,
            protocol: String::new(),
            interrupted: false,
            command: String::new(),
            cells: (0..dims.len()).map(|_| None).collect(),
            causes: (0..dims.checks).map(|_| CheckCauses::default()).collect(),
            windows: Windows::new(),
            saturation: vec![Saturation::default(); dims.phases],
            lag: (0..dims.phases).map(|_| histogram()).collect(),
            spans: vec![None; dims.phases],
            run_span: Duration::ZERO,
            events: vec![EventFacts::default(); events],
            oracle: None,
            quic_refusals: BTreeMap::new(),
            followed_h3: false,
            websocket: None,
            replays: Vec::new(),
            shards: None,
        }
    }

    /// Adds a shard's record into `self`. Counters and histograms add exactly; `offset` is how
    /// much later than `self.started_at` the shard started, so spans cover every shard.
    pub fn add(&mut self, o: &Record, offset: Duration) {
        for (a, b) in self.cells.iter_mut().zip(&o.cells) {
            if let Some(b) = b {
                a.get_or_insert_with(Box::default).add(b);
            }
        }
        for (a, b) in self.causes.iter_mut().zip(&o.causes) {
            for (x, y) in a.iter_mut().zip(b.iter()) {
                x.add(y);
            }
        }
        for (k, w) in &o.windows {
            // Shards' parts of one window add; it straddles a phase change when a part does.
            self.windows.entry(*k).or_default().add(w);
        }
        for (a, b) in self.saturation.iter_mut().zip(&o.saturation) {
            a.ticks += b.ticks;
            a.capped += b.capped;
        }
        for (a, b) in self.lag.iter_mut().zip(&o.lag) {
            let _ = a.add(b);
        }
        for (a, b) in self.spans.iter_mut().zip(&o.spans) {
            *a = match (*a, *b) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        self.run_span = self.run_span.max(offset + o.run_span);
        for (a, b) in self.events.iter_mut().zip(&o.events) {
            a.fired |= b.fired;
            // The slowest recovery any shard saw.
            a.recovery_us = match (a.recovery_us, b.recovery_us) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        if let Some(b) = &o.oracle {
            self.oracle.get_or_insert_with(OracleRecord::default).add(b);
        }
        for (k, n) in &o.quic_refusals {
            *self.quic_refusals.entry(k.clone()).or_default() += n;
        }
        self.followed_h3 |= o.followed_h3;
        match (&mut self.websocket, &o.websocket) {
            (Some(a), Some(b)) => a.add(b),
            (a @ None, Some(b)) => *a = Some(b.clone()),
            _ => {}
        }
        self.interrupted |= o.interrupted;
    }

    /// Every client-side counter summed over the cells.
    pub fn totals(&self) -> Counts {
        let mut c = Counts::default();
        for cell in self.cells.iter().flatten() {
            c.add(&cell.counts);
        }
        c
    }
}

// ---- the serialised form -------------------------------------------------------------

/// A histogram as base64 of its V2 deflate encoding (exact).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    let _ = V2DeflateSerializer::new().serialize(h, &mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// The histogram [`encode_histogram`] made (or any V2 histogram of at most 3 significant
/// digits, as every log gauntlet writes holds). Input from elsewhere is checked before the
/// decoder sees it: the decoder allocates what a header asks for (4 GiB from 40 bytes) and
/// inflates without a bound.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    use std::io::Read as _;
    /// hdrhistogram's V2 cookies (plain, zlib-compressed).
    const V2: u32 = 0x1c84_9313;
    const V2_DEFLATE: u32 = 0x1c84_9314;
    /// The plain form's header: cookie, payload length, offset, digits, low, high, ratio.
    const HEADER: usize = 40;
    /// Most bytes a histogram of 3 digits over all of u64 takes (about 55,000 counts of at
    /// most 9 bytes each), with room.
    const MOST: usize = 1 << 20;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("not base64: {e}"))?;
    let word = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    let plain = match word(&bytes, 0) {
        Some(V2) => bytes,
        Some(V2_DEFLATE) => {
            let len = word(&bytes, 4).ok_or("not a histogram: cut short")? as usize;
            let body = bytes.get(8..).filter(|b| b.len() >= len).ok_or("not a histogram: cut short")?;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&body[..len])
                .take(MOST as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("not a histogram: {e}"))?;
            if out.len() > MOST {
                return Err("not a histogram: it inflates past 1 MiB".into());
            }
            out
        }
        _ => return Err("not a histogram (unknown cookie)".into()),
    };
    if word(&plain, 0) != Some(V2) || plain.len() < HEADER {
        return Err("not a histogram: cut short".into());
    }
    let payload = word(&plain, 4).unwrap_or(u32::MAX) as usize;
    let digits = word(&plain, 12).unwrap_or(u32::MAX);
    if payload > plain.len() - HEADER {
        return Err(format!("not a histogram: its header claims {payload} bytes, {} follow", plain.len() - HEADER));
    }
    if digits > 3 {
        return Err(format!("not a histogram of gauntlet's: {digits} significant digits (gauntlet writes 3)"));
    }
    Deserializer::new().deserialize(&mut &plain[..]).map_err(|e| format!("not a histogram: {e:?}"))
}

#[derive(Debug, Serialize, Deserialize)]
struct CellWire {
    index: usize,
    counts: Counts,
    latency: String,
    service: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CausesWire {
    check: usize,
    kind: usize,
    kept: Vec<(String, u64)>,
    other: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct WsWire {
    summary: WebSocketSummary,
    rtt: String,
}

/// The record as written to `shard.json`.
#[derive(Debug, Serialize, Deserialize)]
struct RecordWire {
    run_id: String,
    started_at_unix_ns: u128,
    protocol: String,
    interrupted: bool,
    command: String,
    dims: (usize, usize, usize),
    cells: Vec<CellWire>,
    causes: Vec<CausesWire>,
    windows: Vec<((u16, u32), Window)>,
    saturation: Vec<Saturation>,
    lag: Vec<String>,
    spans_us: Vec<Option<u64>>,
    run_span_us: u64,
    events: Vec<EventFacts>,
    oracle: Option<OracleRecord>,
    quic_refusals: BTreeMap<String, u64>,
    followed_h3: bool,
    websocket: Option<WsWire>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A shard's result: which run and scenario it belongs to, which part it sent, and its record.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardFile {
    /// Always [`SHARD_SCHEMA`].
    pub schema: String,
    /// gauntlet version.
    pub gauntlet_version: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's digest (all source files): every shard of a run must carry the same.
    pub scenario_sha256: String,
    /// This shard, `0..shards`.
    pub shard: u32,
    /// Shards in the run.
    pub shards: u32,
    /// The wall-clock instant every shard was told to start at (RFC 3339), if any.
    pub start_at: Option<String>,
    /// How late this shard started against `start_at`, ms (negative: early).
    pub lateness_ms: Option<f64>,
    /// A digest of the schedule and checks it ran (phases, conditions, expectations), so a
    /// merge under another `--duration` is refused.
    pub plan_sha256: String,
    /// The target it sent to (URL as the run used it, after `--target-url`), and over which
    /// protocol: every shard of a run must have measured the same gateway the same way.
    pub target: String,
    record: RecordWire,
}

impl ShardFile {
    /// A shard's result from its record.
    pub fn new(
        s: &Scenario,
        shard: (u32, u32),
        start_at: Option<String>,
        lateness_ms: Option<f64>,
        plan_sha256: String,
        r: &Record,
    ) -> Self {
        let target = crate::conformance::redact_userinfo(&s.target.url).into_owned();
        let dims = (r.spans.len(), 0, r.causes.len());
        let mut causes = Vec::new();
        for (check, kinds) in r.causes.iter().enumerate() {
            for (kind, c) in kinds.iter().enumerate() {
                if !c.kept.is_empty() || c.other > 0 {
                    let kept = c.kept.iter().map(|(m, n)| (m.to_string(), *n)).collect();
                    causes.push(CausesWire { check, kind, kept, other: c.other });
                }
            }
        }
        let conditions = r.cells.len().checked_div(dims.0 * dims.2).unwrap_or(0);
        ShardFile {
            schema: SHARD_SCHEMA.into(),
            gauntlet_version: env!("CARGO_PKG_VERSION").into(),
            scenario: s.name.clone(),
            scenario_sha256: s.sha256.clone(),
            shard: shard.0,
            shards: shard.1,
            start_at,
            lateness_ms,
            plan_sha256,
            target,
            record: RecordWire {
                run_id: r.run_id.clone(),
                started_at_unix_ns: r.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
                protocol: r.protocol.clone(),
                interrupted: r.interrupted,
                command: r.command.clone(),
                dims: (dims.0, conditions, dims.2),
                cells: r
                    .cells
                    .iter()
                    .enumerate()
                    .filter_map(|(index, c)| {
                        c.as_ref().map(|c| CellWire {
                            index,
                            counts: c.counts.clone(),
                            latency: encode_histogram(&c.latency),
                            service: encode_histogram(&c.service),
                        })
                    })
                    .collect(),
                causes,
                windows: r.windows.iter().map(|(k, w)| (*k, *w)).collect(),
                saturation: r.saturation.clone(),
                lag: r.lag.iter().map(encode_histogram).collect(),
                spans_us: r.spans.iter().map(|s| s.map(micros)).collect(),
                run_span_us: micros(r.run_span),
                events: r.events.clone(),
                oracle: r.oracle.clone(),
                quic_refusals: r.quic_refusals.clone(),
                followed_h3: r.followed_h3,
                websocket: r
                    .websocket
                    .as_ref()
                    .map(|w| WsWire { summary: w.summary.clone(), rtt: encode_histogram(&w.rtt) }),
            },
        }
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.record.run_id
    }

    /// When the shard started.
    pub fn started_at(&self) -> SystemTime {
        let ns = self.record.started_at_unix_ns;
        SystemTime::UNIX_EPOCH + Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
    }

    /// The protocol it ran.
    pub fn protocol(&self) -> &str {
        &self.record.protocol
    }

    /// Requests this shard sent.
    pub fn sent(&self) -> u64 {
        self.record.cells.iter().fold(0u64, |n, c| n.saturating_add(c.counts.sent))
    }

    /// What a shard file from elsewhere must hold before anything is computed from it.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_SHARDS).contains(&self.shards) || self.shard >= self.shards {
            return Err(format!("shard {} of {}: expected 0 ≤ shard < shards ≤ {MAX_SHARDS}", self.shard, self.shards));
        }
        // Up to 2262: inside every clock type the merge turns it into.
        if self.record.started_at_unix_ns > i64::MAX as u128 {
            return Err(format!("started_at_unix_ns {} is past the year 2262", self.record.started_at_unix_ns));
        }
        if self.lateness_ms.is_some_and(|l| !l.is_finite()) {
            return Err("lateness_ms is not a number".into());
        }
        Ok(())
    }

    /// The record, checked against the dimensions of the scenario it is merged under.
    pub fn record(&self, dims: Dims, events: usize) -> Result<Record, String> {
        let w = &self.record;
        if w.dims != (dims.phases, dims.conditions, dims.checks) {
            return Err(format!(
                "its counters have {} phases × {} conditions × {} checks, the scenario {} × {} × {}",
                w.dims.0, w.dims.1, w.dims.2, dims.phases, dims.conditions, dims.checks
            ));
        }
        let mut r = Record::empty(dims, events);
        r.run_id = w.run_id.clone();
        r.started_at = self.started_at();
        r.protocol = w.protocol.clone();
        r.interrupted = w.interrupted;
        r.command = w.command.clone();
        for c in &w.cells {
            let slot = r.cells.get_mut(c.index).ok_or_else(|| format!("cell {} is out of range", c.index))?;
            let latency = decode_histogram(&c.latency).map_err(|e| format!("cell {}: latency: {e}", c.index))?;
            let service = decode_histogram(&c.service).map_err(|e| format!("cell {}: service time: {e}", c.index))?;
            if c.counts.completed != latency.len() {
                return Err(format!(
                    "cell {}: {} answers but {} latency samples",
                    c.index,
                    c.counts.completed,
                    latency.len()
                ));
            }
            *slot = Some(Box::new(Cell { counts: c.counts.clone(), latency, service }));
        }
        for c in &w.causes {
            let slot = r
                .causes
                .get_mut(c.check)
                .and_then(|k| k.get_mut(c.kind))
                .ok_or_else(|| format!("error causes of check {} kind {} are out of range", c.check, c.kind))?;
            *slot = Causes { kept: c.kept.iter().map(|(m, n)| (Arc::from(m.as_str()), *n)).collect(), other: c.other };
        }
        r.windows = w.windows.iter().map(|(k, v)| (*k, *v)).collect();
        if w.saturation.len() != dims.phases || w.lag.len() != dims.phases || w.spans_us.len() != dims.phases {
            return Err("its per-phase figures do not match the scenario's phases".into());
        }
        if w.events.len() != events {
            return Err(format!("it has {} timed events, the scenario {events}", w.events.len()));
        }
        r.saturation = w.saturation.clone();
        r.lag = w.lag.iter().map(|h| decode_histogram(h)).collect::<Result<_, _>>().map_err(|e| format!("lag: {e}"))?;
        r.spans = w.spans_us.iter().map(|s| s.map(Duration::from_micros)).collect();
        r.run_span = Duration::from_micros(w.run_span_us);
        r.events = w.events.clone();
        r.oracle = w.oracle.clone();
        r.quic_refusals = w.quic_refusals.clone();
        r.followed_h3 = w.followed_h3;
        r.websocket = match &w.websocket {
            Some(x) => Some(WsRecord {
                summary: x.summary.clone(),
                rtt: decode_histogram(&x.rtt).map_err(|e| format!("websocket: {e}"))?,
            }),
            None => None,
        };
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_shard_file_exactly() {
        let mut h = histogram();
        for v in [1u64, 17, 999, 1_000_001, 3_600_000_000] {
            let _ = h.record(v);
        }
        let back = decode_histogram(&encode_histogram(&h)).expect("decodes");
        assert_eq!(back, h);
        assert!(decode_histogram("!!").is_err());
    }

    #[test]
    fn hostile_histogram_headers_are_refused_before_anything_is_allocated() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        // A plain V2 header asking for a 4 GiB payload, with nothing after it.
        let mut h = 0x1c84_9313u32.to_be_bytes().to_vec();
        h.extend_from_slice(&u32::MAX.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h.extend_from_slice(&3u32.to_be_bytes());
        h.extend_from_slice(&1u64.to_be_bytes());
        h.extend_from_slice(&u64::MAX.to_be_bytes());
        h.extend_from_slice(&1f64.to_be_bytes());
        let err = decode_histogram(&b64(&h)).expect_err("claims more than it holds");
        assert!(err.contains("claims"), "{err}");
        // 5 significant digits over u64 (50 MB of counts).
        h[4..8].copy_from_slice(&0u32.to_be_bytes());
        h[12..16].copy_from_slice(&5u32.to_be_bytes());
        assert!(decode_histogram(&b64(&h)).expect_err("5 digits").contains("significant"));
        // A zlib bomb: 64 MiB of zeros behind a compressed cookie.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &vec![0u8; 64 << 20]).unwrap();
        let z = z.finish().unwrap();
        let mut bomb = 0x1c84_9314u32.to_be_bytes().to_vec();
        bomb.extend_from_slice(&(z.len() as u32).to_be_bytes());
        bomb.extend_from_slice(&z);
        assert!(decode_histogram(&b64(&bomb)).is_err());
        // Cut short.
        assert!(decode_histogram(&b64(&bomb[..6])).is_err());
    }
}
