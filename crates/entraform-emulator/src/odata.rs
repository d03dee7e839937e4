//! The slice of OData the Graph directory endpoints need: `$filter` (comparisons, `and`/`or`/
//! `not`, `startswith`, `in`, `any` lambdas), `$select`, and alternate-key path segments.

use serde_json::Value;

use super::errors::GraphError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Vec<String>, Op, Lit),
    StartsWith(Vec<String>, String),
    EndsWith(Vec<String>, String),
    In(Vec<String>, Vec<Lit>),
    Any(Vec<String>, String, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Slash,
    Colon,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '/' => {
                out.push(Tok::Slash);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "-.".contains(chars[i]))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) => out.push(Tok::Num(n)),
                    // A bare GUID (old OData syntax) is compared as a string.
                    Err(_) => out.push(Tok::Str(text)),
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.$".contains(chars[i])) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<(), String> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(format!("expected {t:?}, found {other:?}")),
        }
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(i)) if i.eq_ignore_ascii_case(k))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(e);
        }
        if self.keyword("startswith") || self.keyword("endswith") {
            let starts = self.keyword("startswith");
            self.pos += 1;
            self.expect(Tok::LParen)?;
            let path = self.path()?;
            self.expect(Tok::Comma)?;
            let lit = match self.next() {
                Some(Tok::Str(s)) => s,
                other => return Err(format!("expected a string, found {other:?}")),
            };
            self.expect(Tok::RParen)?;
            return Ok(if starts {
                Expr::StartsWith(path, lit)
            } else {
                Expr::EndsWith(path, lit)
            });
        }
        let path = self.path()?;
        // `collection/any(x: …)`
        if let Some(last) = path.last()
            && (last.eq_ignore_ascii_case("any") || last.eq_ignore_ascii_case("all"))
            && self.peek() == Some(&Tok::LParen)
        {
            if last.eq_ignore_ascii_case("all") {
                return Err("the 'all' operator is not supported".into());
            }
            let coll = path[..path.len() - 1].to_vec();
            if coll.is_empty() {
                return Err("a lambda needs a collection property before '/any'".into());
            }
            self.expect(Tok::LParen)?;
            let var = match self.next() {
                Some(Tok::Ident(v)) => v,
                other => return Err(format!("expected a lambda variable, found {other:?}")),
            };
            self.expect(Tok::Colon)?;
            let body = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(Expr::Any(coll, var, Box::new(body)));
        }
        let op = match self.next() {
            Some(Tok::Ident(op)) => op.to_ascii_lowercase(),
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        if op == "in" {
            self.expect(Tok::LParen)?;
            let mut lits = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                lits.push(self.literal()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Expr::In(path, lits));
        }
        let op = match op.as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "ge" => Op::Ge,
            "gt" => Op::Gt,
            "le" => Op::Le,
            "lt" => Op::Lt,
            other => return Err(format!("unknown operator '{other}'")),
        };
        Ok(Expr::Cmp(path, op, self.literal()?))
    }

    fn path(&mut self) -> Result<Vec<String>, String> {
        let mut path = Vec::new();
        match self.next() {
            Some(Tok::Ident(i)) => path.push(i),
            other => return Err(format!("expected a property name, found {other:?}")),
        }
        while self.peek() == Some(&Tok::Slash) {
            self.pos += 1;
            match self.next() {
                Some(Tok::Ident(i)) => path.push(i),
                other => return Err(format!("expected a property name, found {other:?}")),
            }
        }
        Ok(path)
    }

    fn literal(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Ident(i)) if i == "null" => Ok(Lit::Null),
            Some(Tok::Ident(i)) if i == "true" => Ok(Lit::Bool(true)),
            Some(Tok::Ident(i)) if i == "false" => Ok(Lit::Bool(false)),
            other => Err(format!("expected a literal, found {other:?}")),
        }
    }
}

/// Parse a `$filter` value. Errors read like Graph's (`Invalid filter clause`).
pub(crate) fn parse_filter(s: &str) -> Result<Expr, GraphError> {
    let fail = |why: String| GraphError::odata_bad_request(format!("Invalid filter clause: {why}"));
    let toks = lex(s).map_err(fail)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr().map_err(fail)?;
    if p.pos != p.toks.len() {
        return Err(fail(format!("unexpected {:?}", p.toks[p.pos])));
    }
    Ok(e)
}

/// The first segment of every property path in the filter (to check them against the type).
pub(crate) fn filter_properties(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Or(a, b) | Expr::And(a, b) => {
            filter_properties(a, out);
            filter_properties(b, out);
        }
        Expr::Not(a) => filter_properties(a, out),
        Expr::Cmp(p, _, _) | Expr::StartsWith(p, _) | Expr::EndsWith(p, _) | Expr::In(p, _) => {
            out.push(p[0].clone())
        }
        Expr::Any(p, _, _) => out.push(p[0].clone()),
    }
}

fn resolve<'a>(v: &'a Value, path: &[String], var: Option<(&str, &'a Value)>) -> &'a Value {
    let (mut cur, rest) = match var {
        Some((name, item)) if path[0] == name => (item, &path[1..]),
        _ => (v, path),
    };
    for seg in rest {
        cur = match cur.get(seg.as_str()) {
            Some(x) => x,
            None => &Value::Null,
        };
    }
    cur
}

fn cmp(v: &Value, op: Op, lit: &Lit) -> bool {
    use std::cmp::Ordering;
    let ord = match (v, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Lit::Null) => None,
        // Directory string comparisons are case-insensitive.
        (Value::String(a), Lit::Str(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Number(a), Lit::Num(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Value::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ord) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        _ => false,
    }
}

fn eval_in<'a>(e: &Expr, v: &'a Value, var: Option<(&str, &'a Value)>) -> bool {
    match e {
        Expr::Or(a, b) => eval_in(a, v, var) || eval_in(b, v, var),
        Expr::And(a, b) => eval_in(a, v, var) && eval_in(b, v, var),
        Expr::Not(a) => !eval_in(a, v, var),
        Expr::Cmp(p, op, lit) => cmp(resolve(v, p, var), *op, lit),
        Expr::StartsWith(p, s) => resolve(v, p, var)
            .as_str()
            .is_some_and(|x| x.to_lowercase().starts_with(&s.to_lowercase())),
        Expr::EndsWith(p, s) => resolve(v, p, var)
            .as_str()
            .is_some_and(|x| x.to_lowercase().ends_with(&s.to_lowercase())),
        Expr::In(p, lits) => {
            let x = resolve(v, p, var);
            lits.iter().any(|l| cmp(x, Op::Eq, l))
        }
        Expr::Any(p, name, body) => resolve(v, p, var)
            .as_array()
            .is_some_and(|items| items.iter().any(|it| eval_in(body, v, Some((name, it))))),
    }
}

pub(crate) fn eval(e: &Expr, v: &Value) -> bool {
    eval_in(e, v, None)
}

/// Keep only the `$select`ed properties (in the order asked).
pub(crate) fn select(v: &Value, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        if let Some(x) = v.get(f.as_str()) {
            out.insert(f.clone(), x.clone());
        }
    }
    Value::Object(out)
}

/// How an entity is addressed in a path segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    /// `/applications/{id}` or `/applications('{id}')`.
    Id(String),
    /// `/applications(appId='…')`, `(uniqueName='…')`.
    Alt(String, String),
}

/// Split `applications(appId='x')` into `("applications", Some(Alt("appId","x")))`.
pub(crate) fn parse_segment(seg: &str) -> Result<(String, Option<Key>), GraphError> {
    let Some(open) = seg.find('(') else {
        return Ok((seg.to_string(), None));
    };
    let name = seg[..open].to_string();
    let inner = seg[open + 1..].strip_suffix(')').ok_or_else(|| {
        GraphError::odata_bad_request(format!("Bad request: malformed key in segment '{seg}'."))
    })?;
    let unquote = |s: &str| -> Option<String> {
        s.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(|s| s.replace("''", "'"))
    };
    if let Some((prop, value)) = inner.split_once('=') {
        let value = unquote(value.trim()).ok_or_else(|| {
            GraphError::odata_bad_request(format!(
                "Bad request: the key value in '{seg}' must be a quoted string."
            ))
        })?;
        Ok((name, Some(Key::Alt(prop.trim().to_string(), value))))
    } else {
        let id = unquote(inner.trim()).unwrap_or_else(|| inner.trim().to_string());
        Ok((name, Some(Key::Id(id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters() {
        let app = json!({"appId": "A1", "displayName": "Frame MCP", "identifierUris": ["https://axe.axelabs.ai/frame/mcp"], "api": {"requestedAccessTokenVersion": 2}});
        let t = |f: &str| eval(&parse_filter(f).unwrap(), &app);
        assert!(t("appId eq 'a1'"));
        assert!(t("startswith(displayName,'frame')"));
        assert!(!t("startswith(displayName,'blue')"));
        assert!(t(
            "identifierUris/any(x:x eq 'https://axe.axelabs.ai/frame/mcp')"
        ));
        assert!(t("identifierUris/any(c:startswith(c, 'https://axe'))"));
        assert!(t("appId eq 'zz' or displayName eq 'Frame MCP'"));
        assert!(!t("appId eq 'A1' and not (displayName eq 'Frame MCP')"));
        assert!(t("appId in ('B', 'A1')"));
        assert!(t("api/requestedAccessTokenVersion eq 2"));
        assert!(parse_filter("appId eq").is_err());
        assert!(parse_filter("any(x:x eq 'a')").is_err());
        assert!(parse_filter("appId eq 'x").is_err());
        assert_eq!(
            parse_segment("applications(uniqueName='a''b')").unwrap(),
            (
                "applications".into(),
                Some(Key::Alt("uniqueName".into(), "a'b".into()))
            )
        );
    }

    proptest::proptest! {
        /// Whatever a client sends as `$filter`, the parser answers Ok or Err, never panics.
        #[test]
        fn filter_parser_never_panics(s in "[a-zA-Z/:()' ,0-9.$-]{0,60}") {
            if let Ok(e) = parse_filter(&s) {
                let mut props = Vec::new();
                filter_properties(&e, &mut props);
                let _ = eval(&e, &json!({"a": ["x"], "b": {"c": 1}}));
            }
            let _ = parse_segment(&s);
        }
    }
}
