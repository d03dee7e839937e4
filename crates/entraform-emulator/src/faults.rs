//! Fault injection: latency, throttling (429 + `Retry-After`), 503s and the replication delay
//! (<https://learn.microsoft.com/graph/throttling>, <https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>). Random faults come from a seeded RNG so a failing run reproduces.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::GraphError;

/// The emulator's fault knobs. Every field can be changed at run time with
/// `POST /_emulator/faults` (a partial JSON object, camelCase) or [`super::RunningEmulator::set_faults`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request except the `/_emulator/` controls.
    pub latency_ms: u64,
    /// Probability (0–1) that a Graph request is answered 429 `TooManyRequests`.
    pub throttle_rate: f64,
    /// Probability (0–1) that a Graph request is answered 503 `ServiceNotAvailable`.
    pub error_rate: f64,
    /// New objects and secrets stay invisible to reads and to login for this long.
    pub replication_delay_ms: u64,
    /// `Retry-After` seconds sent with 429/503 (fractional allowed, as Graph does); 0 omits it.
    pub retry_after_secs: f64,
    /// Seed of the fault RNG; setting it restarts the random sequence.
    pub rng_seed: u64,
    /// The next N Graph requests get a 429 (deterministic, before the random rates).
    pub throttle_next: u32,
    /// The next N Graph requests get a 503 (after `throttle_next`).
    pub error_next: u32,
    /// Only Graph requests whose `"METHOD /path"` (path after `/v1.0`) contains this string
    /// are subject to throttling, errors and lost answers (e.g. `"POST /servicePrincipals"`).
    pub matching: Option<String>,
    /// The next N Graph requests are carried out, then their answer is lost as `lostAnswer`
    /// says: what a client sees when a gateway gives up on a request that ran, or the
    /// connection drops after the request was sent. The change stays made.
    pub lose_answer_next: u32,
    /// How an answer is lost (`loseAnswerNext`).
    pub lost_answer: LostAnswer,
}

/// How [`Faults::lose_answer_next`] loses an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostAnswer {
    /// 504 `GatewayTimeout`, as Graph's front end answers when the service behind it did not
    /// answer in time (<https://learn.microsoft.com/graph/errors>: "504 Gateway Timeout").
    #[default]
    GatewayTimeout,
    /// The connection is closed without an answer (inside a `$batch`: a 504 for that request).
    Reset,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            throttle_rate: 0.0,
            error_rate: 0.0,
            replication_delay_ms: 0,
            retry_after_secs: 1.0,
            rng_seed: 1,
            throttle_next: 0,
            error_next: 0,
            matching: None,
            lose_answer_next: 0,
            lost_answer: LostAnswer::GatewayTimeout,
        }
    }
}

impl Faults {
    /// Check rates are probabilities.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("throttleRate", self.throttle_rate),
            ("errorRate", self.error_rate),
        ] {
            if !(0.0..=1.0).contains(&v) || v.is_nan() {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if !(self.retry_after_secs >= 0.0 && self.retry_after_secs.is_finite()) {
            return Err("retryAfterSecs must be zero or positive".into());
        }
        Ok(())
    }
}

/// Faults plus the RNG that drives them.
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        let rng = StdRng::seed_from_u64(faults.rng_seed);
        FaultState { faults, rng }
    }

    /// Replace the knobs; a changed seed restarts the sequence.
    pub fn set(&mut self, faults: Faults, reseed: bool) {
        if reseed || faults.rng_seed != self.faults.rng_seed {
            self.rng = StdRng::seed_from_u64(faults.rng_seed);
        }
        self.faults = faults;
    }

    /// Merge a partial JSON update (`POST /_emulator/faults`).
    pub fn update(&mut self, patch: &Value) -> Result<Faults, String> {
        let mut current = serde_json::to_value(&self.faults).map_err(|e| e.to_string())?;
        let Some(p) = patch.as_object() else {
            return Err("the body must be a JSON object of fault settings".into());
        };
        for (k, v) in p {
            current[k] = v.clone();
        }
        let next: Faults = serde_json::from_value(current).map_err(|e| e.to_string())?;
        next.validate()?;
        self.set(next.clone(), p.contains_key("rngSeed"));
        Ok(next)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.faults
            .matching
            .as_ref()
            .is_none_or(|m| format!("{method} {path}").contains(m.as_str()))
    }

    /// After a Graph request ran: whether its answer is lost, and how.
    pub fn lose_answer(&mut self, method: &str, path: &str) -> Option<LostAnswer> {
        if self.faults.lose_answer_next == 0 || !self.matches(method, path) {
            return None;
        }
        self.faults.lose_answer_next -= 1;
        Some(self.faults.lost_answer)
    }

    /// Decide whether this Graph request fails; `None` lets it through.
    pub fn draw(&mut self, method: &str, path: &str) -> Option<GraphError> {
        if !self.matches(method, path) {
            return None;
        }
        let f = &mut self.faults;
        let retry_after = (f.retry_after_secs > 0.0).then(|| format_secs(f.retry_after_secs));
        if f.throttle_next > 0 {
            f.throttle_next -= 1;
            return Some(throttled(retry_after));
        }
        if f.error_next > 0 {
            f.error_next -= 1;
            return Some(unavailable(retry_after));
        }
        let (t, e) = (f.throttle_rate, f.error_rate);
        // Draw both numbers every time so one knob does not shift the other's sequence.
        let a: f64 = self.rng.random();
        let b: f64 = self.rng.random();
        if a < t {
            return Some(throttled(retry_after));
        }
        if b < e {
            return Some(unavailable(retry_after));
        }
        None
    }
}

fn format_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// 429 as <https://learn.microsoft.com/graph/throttling> shows it: `code`/`status` repeated inside `innerError`.
fn throttled(retry_after: Option<String>) -> GraphError {
    let mut e = GraphError::new(429, "TooManyRequests", "Please retry again later.");
    e.inner.push(("code".into(), json!("429")));
    e.inner.push(("status".into(), json!("429")));
    e.inner
        .push(("message".into(), json!("Please retry after")));
    e.headers.push((
        "x-ms-throttle-information".into(),
        "ResourceUnitLimitExceeded".into(),
    ));
    if let Some(r) = retry_after {
        e.headers.push(("Retry-After".into(), r));
    }
    e
}

/// The 504 of a lost answer (the request ran).
pub(crate) fn gateway_timeout() -> GraphError {
    GraphError::new(
        504,
        "UnknownError",
        "The gateway did not receive a response from the service in time.",
    )
}

fn unavailable(retry_after: Option<String>) -> GraphError {
    let mut e = GraphError::new(
        503,
        "serviceNotAvailable",
        "Service unavailable. Please retry later.",
    );
    if let Some(r) = retry_after {
        e.headers.push(("Retry-After".into(), r));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequence_reproduces() {
        let faults = Faults {
            throttle_rate: 0.3,
            error_rate: 0.3,
            rng_seed: 42,
            ..Faults::default()
        };
        let run = || {
            let mut s = FaultState::new(faults.clone());
            (0..50)
                .map(|_| s.draw("GET", "/applications").map(|e| e.status))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.contains(&Some(429)) && a.contains(&Some(503)) && a.contains(&None));
    }

    #[test]
    fn counters_and_matching() {
        let mut s = FaultState::new(Faults {
            throttle_next: 1,
            error_next: 1,
            matching: Some("POST /servicePrincipals".into()),
            ..Faults::default()
        });
        assert!(s.draw("GET", "/applications").is_none());
        let e = s.draw("POST", "/servicePrincipals").unwrap();
        assert_eq!(e.status, 429);
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| k == "Retry-After" && v == "1")
        );
        assert_eq!(s.draw("POST", "/servicePrincipals").unwrap().status, 503);
        assert!(s.draw("POST", "/servicePrincipals").is_none());
        assert!(s.update(&json!({"throttleRate": 2.0})).is_err());
        // Lost answers count down on matching requests only, after the request ran.
        s.update(&json!({"loseAnswerNext": 1, "lostAnswer": "reset"}))
            .unwrap();
        assert_eq!(s.lose_answer("GET", "/applications"), None);
        assert_eq!(
            s.lose_answer("POST", "/servicePrincipals"),
            Some(LostAnswer::Reset)
        );
        assert_eq!(s.lose_answer("POST", "/servicePrincipals"), None);
        assert!(s.update(&json!({"bogus": 1})).is_err());
    }
}
