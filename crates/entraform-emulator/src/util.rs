//! Small helpers shared by the emulator's modules: time formats, ids, percent-decoding, and the
//! response type every handler returns.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch (visibility timestamps survive a restart with `--state`).
pub(crate) fn now_ms() -> u64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as u64
}

/// Graph's timestamp shape: UTC with seven fractional digits (`2019-09-17T19:10:35.2742618Z`).
pub(crate) fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

pub(crate) fn now_iso() -> String {
    iso(OffsetDateTime::now_utc())
}

/// `innerError.date`: second precision, no zone suffix (<https://learn.microsoft.com/graph/errors>).
pub(crate) fn inner_error_date() -> String {
    now_seconds('T', "")
}

/// The token endpoint's timestamp (`2016-01-09 02:02:12Z`).
pub(crate) fn login_timestamp() -> String {
    now_seconds(' ', "Z")
}

/// The UTC time now to the second: date, `sep`, time, `suffix`.
fn now_seconds(sep: char, suffix: &str) -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{suffix}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// Percent-decode a URL component (lossy on invalid UTF-8).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split a raw query string into decoded `(name, value)` pairs (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Query parameter names whose values must never reach the request log.
pub(crate) fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let lname = name.to_ascii_lowercase();
            if ["secret", "password", "token", "assertion", "code"]
                .iter()
                .any(|w| lname.contains(w))
            {
                format!("{name}=***")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What a handler answers; the server turns it into one HTTP response (or one `$batch` entry).
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: RespBody,
}

#[derive(Debug, Clone)]
pub(crate) enum RespBody {
    Empty,
    Json(Value),
    Text(String, &'static str),
}

/// Graph's JSON content type (<https://learn.microsoft.com/graph/api/application-list?view=graph-rest-1.0>).
pub(crate) const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

impl Resp {
    pub fn json(status: u16, body: Value) -> Self {
        Resp {
            status,
            headers: Vec::new(),
            body: RespBody::Json(body),
        }
    }

    pub fn empty(status: u16) -> Self {
        Resp {
            status,
            headers: Vec::new(),
            body: RespBody::Empty,
        }
    }
}

/// Headers of one request as lower-case `(name, value)` pairs (also used for `$batch` entries).
#[derive(Debug, Clone, Default)]
pub(crate) struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_redacts() {
        assert_eq!(percent_decode("a%27b%2"), "a'b%2");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(redact_query("a=1&client_secret=x"), "a=1&client_secret=***");
        let t = OffsetDateTime::from_unix_timestamp(1_568_747_435).unwrap();
        assert_eq!(iso(t), "2019-09-17T19:10:35.0000000Z");
    }
}
