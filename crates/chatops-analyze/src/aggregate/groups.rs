//! Grouping state of the aggregator: interned keys per dimension, capped key
//! combinations, and the per-group accumulators (router and worker totals, counters).

use super::*;

/// FNV-1a: group keys are short, and hashing them is on the hot path (several lookups per
/// line), where SipHash's HashDoS protection buys nothing because key sets are capped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// A counter by key with at most [`MAX_KEYS`] keys.
#[derive(Debug, Default)]
pub(super) struct Counter(pub(super) FastMap<Box<str>, u64>);

impl Counter {
    pub(super) fn merge(&mut self, other: Counter) {
        for (k, n) in other.0 {
            if let Some(mine) = self.0.get_mut(&k) {
                *mine += n;
            } else if self.0.len() < MAX_KEYS {
                self.0.insert(k, n);
            } else {
                *self.0.entry(OTHER_KEY.into()).or_default() += n;
            }
        }
    }

    pub(super) fn into_map(self) -> BTreeMap<String, u64> {
        self.0.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }
}

pub(super) fn count(c: &mut Counter, key: &str) {
    let key = cut_key(key);
    if let Some(n) = c.0.get_mut(key) {
        *n += 1;
    } else if c.0.len() < MAX_KEYS {
        c.0.insert(key.into(), 1);
    } else {
        *c.0.entry(OTHER_KEY.into()).or_default() += 1;
    }
}

#[derive(Debug, Default)]
pub(super) struct RouterAcc {
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) by_status: Counter,
    pub(super) errors_by_status: Counter,
    pub(super) errors_by_type: Counter,
}

#[derive(Debug, Default)]
pub(super) struct WorkerAcc {
    pub(super) attempts: u64,
    pub(super) failures: u64,
    pub(super) retries: u64,
    pub(super) errors_by_type: Counter,
}

/// Marks a dimension a line does not have (a router line has no component).
pub(super) const NONE: u16 = u16::MAX;
/// Most distinct key combinations; lines with further combinations count under `(other)` in
/// every dimension they have. Real logs have a few dozen (commands × outcomes).
pub(super) const MAX_COMBOS: usize = 4096;

/// The keys seen in one grouping dimension, each with a small id; at most [`MAX_KEYS`] plus
/// `(other)`.
#[derive(Debug, Default)]
pub(super) struct Interner {
    pub(super) index: FastMap<Box<str>, u16>,
    pub(super) names: Vec<Box<str>>,
}

impl Interner {
    pub(super) fn id(&mut self, key: &str) -> u16 {
        let key = cut_key(key);
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let key = if self.names.len() < MAX_KEYS { key } else { OTHER_KEY };
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.names.len() as u16;
        self.names.push(key.into());
        self.index.insert(key.into(), i);
        i
    }
}

/// The statistics per combination of grouping keys (component, command, quadrant, status,
/// outcome). A line is recorded once, in its combination; the per-dimension groups of the
/// summary are merges of combinations at the end. That is the same result as recording each
/// line in five groups (distributions merge exactly), at a fifth of the histogram writes on
/// the hot path.
#[derive(Debug, Default)]
pub(super) struct Combos {
    pub(super) dims: [Interner; 5],
    pub(super) index: FastMap<[u16; 5], usize>,
    pub(super) accs: Vec<([u16; 5], GroupAcc)>,
}

impl Combos {
    pub(super) fn combo(&mut self, mut ids: [u16; 5]) -> &mut GroupAcc {
        let idx = match self.index.get(&ids) {
            Some(&i) => i,
            None => {
                if self.accs.len() >= MAX_COMBOS {
                    for (d, id) in ids.iter_mut().enumerate() {
                        if *id != NONE {
                            *id = self.dims[d].id(OTHER_KEY);
                        }
                    }
                }
                match self.index.get(&ids) {
                    Some(&i) => i,
                    None => {
                        self.accs.push((ids, GroupAcc::default()));
                        self.index.insert(ids, self.accs.len() - 1);
                        self.accs.len() - 1
                    }
                }
            }
        };
        &mut self.accs[idx].1
    }

    pub(super) fn merge(&mut self, other: Combos) {
        for (ids, acc) in other.accs {
            let mut mine = [NONE; 5];
            for (d, (&id, slot)) in ids.iter().zip(&mut mine).enumerate() {
                if id != NONE {
                    *slot = self.dims[d].id(&other.dims[d].names[usize::from(id)]);
                }
            }
            self.combo(mine).merge(&acc);
        }
    }

    /// The overall group and the groups of each dimension, sorted by key.
    pub(super) fn finish(&self) -> (GroupAcc, [Vec<Group>; 5]) {
        let mut all = GroupAcc::default();
        let mut per_dim: [BTreeMap<&str, GroupAcc>; 5] = Default::default();
        for (ids, acc) in &self.accs {
            all.merge(acc);
            for (d, &id) in ids.iter().enumerate() {
                if id != NONE {
                    per_dim[d].entry(&self.dims[d].names[usize::from(id)]).or_default().merge(acc);
                }
            }
        }
        let groups = per_dim.map(|groups| {
            groups
                .into_iter()
                .map(|(key, g)| Group {
                    key: key.to_owned(),
                    router_lines: g.router_lines,
                    router_errors: g.router_errors,
                    worker_lines: g.worker_lines,
                    worker_failures: g.worker_failures,
                    stages: g.stage_stats(),
                    e2e_breakdown: g.breakdown.finish(),
                })
                .collect()
        });
        (all, groups)
    }
}

/// Everything kept per group: counts, one distribution per figure (created on first use),
/// and the breakdown sums.
#[derive(Debug, Default)]
pub(super) struct GroupAcc {
    pub(super) router_lines: u64,
    pub(super) router_errors: u64,
    pub(super) worker_lines: u64,
    pub(super) worker_failures: u64,
    pub(super) dists: [Option<Dist>; Metric::COUNT],
    pub(super) breakdown: BreakdownAcc,
}

impl GroupAcc {
    pub(super) fn record(&mut self, m: Metric, v: f64) {
        self.dists[m.index()].get_or_insert_with(|| Dist::new(Precision::Fine)).record(v);
    }

    pub(super) fn add_router(&mut self, r: &RouterLine<'_>) {
        self.router_lines += 1;
        self.router_errors += u64::from(!r.success);
        self.record(Metric::RouterDuration, r.duration_ms);
    }

    pub(super) fn add_worker(&mut self, w: &WorkerLine<'_>, segments: Option<&LineSegments>) {
        self.worker_lines += 1;
        self.worker_failures += u64::from(!w.success);
        for (i, v) in w.values.iter().enumerate() {
            if let Some(v) = *v {
                self.dists[i].get_or_insert_with(|| Dist::new(Precision::Fine)).record(v);
            }
        }
        if let Some(s) = segments {
            self.breakdown.add(s);
        }
    }

    pub(super) fn merge(&mut self, o: &GroupAcc) {
        self.router_lines += o.router_lines;
        self.router_errors += o.router_errors;
        self.worker_lines += o.worker_lines;
        self.worker_failures += o.worker_failures;
        for (mine, theirs) in self.dists.iter_mut().zip(&o.dists) {
            if let Some(t) = theirs {
                mine.get_or_insert_with(|| Dist::new(Precision::Fine)).merge(t);
            }
        }
        self.breakdown.merge(&o.breakdown);
    }

    pub(super) fn stage_stats(&self) -> Vec<StageStats> {
        Metric::ALL
            .iter()
            .filter_map(|&m| {
                let d = self.dists[m.index()].as_ref()?;
                Some(StageStats { metric: m, stage: m.stage(), label: m.label().to_owned(), stats: d.summary() })
            })
            .collect()
    }
}
