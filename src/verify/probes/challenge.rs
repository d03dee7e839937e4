//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1, <https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1>).

/// One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    /// Auth-params in order; names as sent (compare case-insensitively).
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter's value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parse a `WWW-Authenticate` value into challenges: `Bearer error="invalid_token",
/// resource_metadata="https://…"`, several comma-separated challenges, quoted strings with
/// backslash escapes. Lenient: anything it cannot read is skipped, never an error.
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip_ws(&mut i);
        if i < chars.len() && chars[i] == ',' {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_tchar(chars[i]) {
            i += 1;
        }
        if i == start {
            // Not a token (stray quote, `=`, non-ASCII): skip the character.
            i += 1;
            continue;
        }
        let token: String = chars[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if j < chars.len() && chars[j] == '=' {
            // An auth-param of the current challenge (or the `=` padding of a token68).
            j += 1;
            skip_ws(&mut j);
            let mut val = String::new();
            if j < chars.len() && chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    val.push(chars[j]);
                    j += 1;
                }
                j += 1; // closing quote (or end)
            } else {
                // RFC 9110 allows only a token here, but servers do send unquoted URLs
                // (`resource_metadata=https://…`): read up to the next comma or space.
                while j < chars.len() && !matches!(chars[j], ',' | ' ' | '\t') {
                    val.push(chars[j]);
                    j += 1;
                }
            }
            if let Some(current) = out.last_mut() {
                current.params.push((token, val));
            }
            i = j.min(chars.len());
        } else {
            out.push(Challenge {
                scheme: token,
                params: Vec::new(),
            });
        }
    }
    out
}
