//! Time bins of the aggregator (`--bin`): per bin, line counts and a few distributions.

use super::*;

/// Time bins keyed by `ts.div_euclid(width)`.
#[derive(Debug)]
pub(super) struct Bins {
    pub(super) requested_ns: i64,
    pub(super) width_ns: i64,
    pub(super) map: BTreeMap<i64, BinAcc>,
}

#[derive(Debug)]
pub(super) struct BinAcc {
    pub(super) router_lines: u64,
    pub(super) router_errors: u64,
    pub(super) worker_lines: u64,
    pub(super) worker_failures: u64,
    pub(super) router: Dist,
    pub(super) queue_wait: Dist,
    pub(super) e2e: Dist,
}

impl BinAcc {
    pub(super) fn new() -> Self {
        BinAcc {
            router_lines: 0,
            router_errors: 0,
            worker_lines: 0,
            worker_failures: 0,
            router: Dist::new(Precision::Coarse),
            queue_wait: Dist::new(Precision::Coarse),
            e2e: Dist::new(Precision::Coarse),
        }
    }

    pub(super) fn merge(&mut self, o: &BinAcc) {
        self.router_lines += o.router_lines;
        self.router_errors += o.router_errors;
        self.worker_lines += o.worker_lines;
        self.worker_failures += o.worker_failures;
        self.router.merge(&o.router);
        self.queue_wait.merge(&o.queue_wait);
        self.e2e.merge(&o.e2e);
    }
}

impl Bins {
    pub(super) fn new(width_ns: i64) -> Self {
        Bins { requested_ns: width_ns, width_ns, map: BTreeMap::new() }
    }

    pub(super) fn bin(&mut self, ts: i64) -> &mut BinAcc {
        let mut key = ts.div_euclid(self.width_ns);
        if !self.map.contains_key(&key) {
            while self.span_with(key) > MAX_BINS {
                self.widen();
                key = ts.div_euclid(self.width_ns);
            }
        }
        self.map.entry(key).or_insert_with(BinAcc::new)
    }

    pub(super) fn merge(&mut self, mut other: Bins) {
        // Widths are the requested width doubled n times on both sides; align to the wider.
        while self.width_ns < other.width_ns {
            self.widen();
        }
        while other.width_ns < self.width_ns {
            other.widen();
        }
        for (k, b) in other.map {
            match self.map.entry(k) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(b);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&b),
            }
        }
        while self.span_with(*self.map.keys().next().unwrap_or(&0)) > MAX_BINS {
            self.widen();
        }
    }

    pub(super) fn span_with(&self, key: i64) -> i64 {
        let (Some((&lo, _)), Some((&hi, _))) = (self.map.first_key_value(), self.map.last_key_value()) else {
            return 1;
        };
        hi.max(key).saturating_sub(lo.min(key)).saturating_add(1)
    }

    /// Doubles the width, merging pairs of bins: `floor(floor(t / w) / 2) == floor(t / 2w)`.
    pub(super) fn widen(&mut self) {
        self.width_ns = self.width_ns.saturating_mul(2);
        let old = std::mem::take(&mut self.map);
        for (k, b) in old {
            match self.map.entry(k.div_euclid(2)) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(b);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&b),
            }
        }
    }

    pub(super) fn finish(self) -> TimeBins {
        let mut points = Vec::new();
        if let (Some(&lo), Some(&hi)) = (self.map.keys().next(), self.map.keys().next_back()) {
            let empty = BinAcc::new();
            for k in lo..=hi {
                let b = self.map.get(&k).unwrap_or(&empty);
                points.push(BinPoint {
                    start_ms: (i128::from(k) * i128::from(self.width_ns)).div_euclid(1_000_000) as i64,
                    router_lines: b.router_lines,
                    router_errors: b.router_errors,
                    worker_lines: b.worker_lines,
                    worker_failures: b.worker_failures,
                    router: b.router.summary(),
                    queue_wait: b.queue_wait.summary(),
                    e2e: b.e2e.summary(),
                });
            }
        }
        TimeBins {
            width_ms: (self.width_ns / 1_000_000) as u64,
            requested_width_ms: (self.requested_ns / 1_000_000) as u64,
            points,
        }
    }
}
