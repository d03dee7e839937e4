//! The one definition of a Graph round trip, measured from the emulator's request log.

use entraform::emulator::RequestRecord;

/// The Graph requests of a log (the login endpoint's token requests and the emulator's controls
/// left out).
pub fn graph_only(log: &[RequestRecord]) -> Vec<RequestRecord> {
    log.iter()
        .filter(|r| r.path.starts_with("/v1.0/"))
        .cloned()
        .collect()
}

/// Round trips: requests whose [start, start + duration] intervals overlap form one cluster
/// (they were in flight together); a request that starts once every earlier one has ended opens
/// the next. Each cluster is one round trip.
pub fn round_trips(requests: &[RequestRecord]) -> Vec<Vec<RequestRecord>> {
    let mut sorted = requests.to_vec();
    sorted.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    let mut clusters: Vec<Vec<RequestRecord>> = Vec::new();
    let mut end = f64::NEG_INFINITY;
    for r in sorted {
        let r_end = r.start_ms + r.duration_ms;
        match clusters.last_mut() {
            Some(c) if r.start_ms < end => {
                end = end.max(r_end);
                c.push(r);
            }
            _ => {
                end = r_end;
                clusters.push(vec![r]);
            }
        }
    }
    clusters
}

/// Sequential round trips: the longest chain of requests in which each starts only after the
/// previous one ended — the waits a caller cannot avoid. Concurrent requests add nothing, even
/// when one of them spans several steps of another chain (which merges interval clusters).
pub fn sequential_depth(requests: &[RequestRecord]) -> usize {
    let mut sorted = requests.to_vec();
    sorted.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    let mut depth: Vec<usize> = Vec::with_capacity(sorted.len());
    for (i, r) in sorted.iter().enumerate() {
        let before = sorted[..i]
            .iter()
            .zip(&depth)
            .filter(|(q, _)| q.start_ms + q.duration_ms <= r.start_ms)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}
