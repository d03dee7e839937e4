//! The cloudflared tunnel-config merge.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::engine::*;
use super::*;
use crate::desired::Desired;
use crate::render::cloudflared::{self, Config, LAST_RULE_NOT_CATCH_ALL};
use crate::render::yaml::scalar;
use crate::render::{IngressRule, RenderError, ingress_rules};

/// The pure half of [`merge_cloudflared`]: the merged text of a tunnel config.
///
/// cloudflared sends a request to the first rule whose hostname and path regex match it
/// (<https://developers.cloudflare.com/cloudflare-one/connections/connect-apps/configuration/ingress> ("How traffic is matched")),
/// so the service's rules go in as one group right before the first existing rule that could
/// match any URL they route (a hostname-wide rule for the same host, a broader regex, at the
/// latest the catch-all). Rules that certainly match none of those URLs (other hosts, other
/// services' anchored paths) may stay above them. A rule that is already there with the same
/// hostname and path but another service is a conflict unless `force`.
pub fn merge_cloudflared_text(
    text: &str,
    path: &Path,
    desired: &Desired,
    force: bool,
) -> Result<Merged, RenderError> {
    let name = path.display().to_string();
    let refuse = |e: cloudflared::IngressError, config: Option<&Config>| {
        let line = e
            .rule
            .and_then(|i| config.and_then(|c| c.rules.get(i)).and_then(|r| r.line));
        let hint = if e.message == LAST_RULE_NOT_CATCH_ALL {
            Some(
                "end the `ingress:` list with a catch-all rule: `- service: http_status:404`"
                    .into(),
            )
        } else {
            Some("fix the config so `cloudflared tunnel ingress validate` passes; nothing was written".into())
        };
        RenderError::Cloudflared {
            path: path.to_path_buf(),
            line,
            message: e.message,
            hint,
        }
    };
    let config = Config::parse(text, &name).map_err(|e| refuse(e, None))?;
    let old_rules = config.validate().map_err(|e| refuse(e, Some(&config)))?;
    let (value, doc) = parse_both(text, path)?;
    let mut p = Planner::new(&doc, text, path, value);
    p.warnings.extend(config.warnings.iter().cloned());

    let wanted = ingress_rules(desired);
    let mut missing = Vec::new();
    // The service's rules already in the file (same hostname and path), with their indices.
    let mut present: Vec<(&IngressRule, usize)> = Vec::new();
    for rule in &wanted {
        let found = config
            .rules
            .iter()
            .position(|r| r.hostname == rule.hostname && r.path == rule.path);
        match found {
            Some(i) if config.rules[i].service == rule.service => present.push((rule, i)),
            Some(i) => {
                present.push((rule, i));
                let index = i.to_string();
                let parts = ["ingress", index.as_str(), "service"];
                let existing = Value::String(config.rules[i].service.clone());
                let node = Node::auto(&rule.service);
                if force {
                    p.replace_value(&parts, &node)?;
                    p.actions.push(format!(
                        "replaced the service of ingress rule #{} ({}) (was {}; --force)",
                        i + 1,
                        rule.path,
                        config.rules[i].service
                    ));
                } else {
                    p.conflicts.push(Conflict {
                        line: p.line_at(&parts),
                        what: format!(
                            "the service of ingress rule #{} ({} {})",
                            i + 1,
                            rule.hostname,
                            rule.path
                        ),
                        existing: show(&existing),
                        wanted: show(&node.value()),
                    });
                }
            }
            None => missing.push(rule),
        }
    }

    // The service's rules that are there already must be the ones their URLs reach: a rule
    // above them that catches those URLs made them dead before this merge. That is refused
    // (with the rule in the way), not repaired by moving lines around.
    // Checked on the probe URLs and on every sample URL one of them matches.
    let samples = sample_urls(&old_rules, &wanted);
    for &(rule, own) in &present {
        let urls =
            std::iter::once(rule.probe_url.clone()).chain(samples.iter().filter_map(|url| {
                let (host, url_path) = cloudflared::split_url(url).ok()?;
                cloudflared::rule_matches(&old_rules[own], &host, &url_path).then(|| url.clone())
            }));
        for url in urls {
            let hit =
                cloudflared::match_rule(&old_rules, &url).map_err(|e| refuse(e, Some(&config)))?;
            if !present.iter().any(|(_, i)| *i == hit) {
                return Err(dead_rule(path, &config, hit, own, rule, &url));
            }
        }
    }

    if !missing.is_empty() {
        insert_missing(&mut p, text, desired, &old_rules, &present, &missing)?;
    }

    let crlf = text.contains("\r\n");
    let (merged, actions, warnings) = p.finish(crlf)?;
    check_routing(&merged, path, &wanted, &old_rules)?;
    Ok(Merged {
        text: merged,
        actions,
        warnings,
    })
}

/// Insert the service's missing rules as one group right above the first other rule that could
/// catch one of their URLs (or next to the service's rules already there).
fn insert_missing(
    p: &mut Planner<'_>,
    text: &str,
    desired: &Desired,
    old_rules: &[cloudflared::Rule],
    present: &[(&IngressRule, usize)],
    missing: &[&IngressRule],
) -> Result<(), RenderError> {
    // The first other rule that could catch a URL of the new rules; the catch-all always
    // can, so there is one.
    let first_overlap = old_rules
        .iter()
        .enumerate()
        .filter(|(i, _)| !present.iter().any(|(_, p)| p == i))
        .find(|(_, r)| may_overlap(r, missing))
        .map_or(old_rules.len() - 1, |(i, _)| i);
    // Next to the service's rules that are already there (an upgrade adds the health rule
    // to the group), when that is still above the first rule that could catch them.
    let (at, joins_group) = match present.iter().map(|(_, i)| *i).max() {
        Some(last) if last < first_overlap => (last + 1, true),
        _ => (first_overlap, false),
    };
    let index = at.to_string();
    let Some(item) = p.exact(&["ingress", index.as_str()])? else {
        return Err(p.shape(None, format!("cannot locate ingress rule #{}", at + 1)));
    };
    let item_at = item.location.byte_span.0;
    let content_col = item.location.point_span.0.1;
    // The dash of the item (usually on the same line as its first key).
    let dash = text[..item_at].rfind('-').unwrap_or(item_at);
    let mut line_start = text[..dash].rfind('\n').map_or(0, |i| i + 1);
    let dash_col = dash - line_start;
    // Keep a comment that sits right above that rule with it.
    while line_start > 0 {
        let prev_start = text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
        if text[prev_start..line_start].trim_start().starts_with('#') {
            line_start = prev_start;
        } else {
            break;
        }
    }
    let mut block = String::new();
    if !joins_group {
        block.push_str(&format!(
            "{}# {} MCP (added by entraform)\n",
            " ".repeat(dash_col),
            desired.service
        ));
    }
    for rule in missing {
        let pad = " ".repeat(content_col);
        block.push_str(&format!(
            "{}-{}hostname: {}\n{pad}path: {}\n{pad}service: {}\n",
            " ".repeat(dash_col),
            " ".repeat(content_col.saturating_sub(dash_col + 1).max(1)),
            scalar(&rule.hostname),
            scalar(&rule.path),
            scalar(&rule.service)
        ));
        p.actions.push(format!(
            "added ingress rule {} {} -> {}",
            rule.hostname, rule.path, rule.service
        ));
    }
    let before = &old_rules[at];
    let catch_all = (before.hostname.is_empty() || before.hostname == "*") && before.path.is_none();
    if !joins_group && !catch_all {
        p.actions.push(format!(
            "placed before ingress rule #{} ({}), the first rule that could match their URLs",
            at + 1,
            describe_rule(&before.hostname, before.path.as_ref(), &before.service)
        ));
    }
    warn_taken_over(p, old_rules, present, missing, at);
    p.insert(line_start, false, block);
    if let Some(Value::Sequence(items)) = p.expected_at_mut(&["ingress"]) {
        for (offset, rule) in missing.iter().enumerate() {
            let mut m = Mapping::new();
            m.insert("hostname".into(), rule.hostname.clone().into());
            m.insert("path".into(), rule.path.clone().into());
            m.insert("service".into(), rule.service.clone().into());
            items.insert(at + offset, Value::Mapping(m));
        }
    }
    Ok(())
}

/// Warn about the path rules of other apps at or below `at` that routed one of the new rules'
/// URLs until now.
fn warn_taken_over(
    p: &mut Planner<'_>,
    old_rules: &[cloudflared::Rule],
    present: &[(&IngressRule, usize)],
    missing: &[&IngressRule],
    at: usize,
) {
    // Path rules of other apps that routed one of the service's URLs elsewhere: the
    // operator should know those URLs change hands. (A hostname-wide rule is the main app
    // behind its own proxy: that the service's paths go to the service is the point.)
    for (i, r) in old_rules.iter().enumerate().skip(at) {
        if present.iter().any(|(_, p)| *p == i) || r.path.is_none() {
            continue;
        }
        let claimed: Vec<&str> = missing
            .iter()
            .filter(|w| {
                cloudflared::split_url(&w.probe_url).is_ok_and(|(host, path)| {
                    cloudflared::match_rule(old_rules, &w.probe_url).ok() == Some(i)
                        && cloudflared::rule_matches(r, &host, &path)
                })
            })
            .map(|w| w.probe_url.as_str())
            .collect();
        if !claimed.is_empty() && r.service != missing[0].service {
            p.warnings.push(format!(
                "ingress rule #{} ({}) routed {} until now; the service's rules above it take {} now",
                i + 1,
                describe_rule(&r.hostname, r.path.as_ref(), &r.service),
                claimed.join(", "),
                if claimed.len() == 1 { "it" } else { "them" }
            ));
        }
    }
}

/// The service's rule #`own` (0-based) is not reached for `url`: rule #`hit` catches it first.
pub(super) fn dead_rule(
    path: &Path,
    config: &Config,
    hit: usize,
    own: usize,
    rule: &IngressRule,
    url: &str,
) -> RenderError {
    let other = &config.rules[hit];
    RenderError::Cloudflared {
        path: path.to_path_buf(),
        line: other.line,
        message: format!(
            "ingress rule #{} (hostname {:?}, path {:?}) catches {url} before the service's rule #{} for {}, so that rule is never used for it",
            hit + 1,
            other.hostname,
            other.path,
            own + 1,
            rule.path
        ),
        hint: Some(format!(
            "move the service's rules (line {}) above that rule, or delete them and merge again \
             (entraform then puts them where cloudflared reaches them); cloudflared uses the first \
             rule that matches; nothing was written",
            config.rules[own].line.unwrap_or(0)
        )),
    }
}

/// `hostname axe.axelabs.ai, path ^/x$ → http://h:1` (or `all paths`, `every host`).
pub(super) fn describe_rule(hostname: &str, path: Option<&regex::Regex>, service: &str) -> String {
    let host = if hostname.is_empty() || hostname == "*" {
        "every host".to_owned()
    } else {
        format!("hostname {hostname}")
    };
    let path = path.map_or("all paths".to_owned(), |re| format!("path {}", re.as_str()));
    format!("{host}, {path} → {service}")
}

/// Whether an existing rule could match a URL one of `new` routes. `false` only when that is
/// certain: another hostname, or an anchored path whose literal start rules the new paths out
/// (`^/frame/mcp…` next to `^/blueprint/mcp…`). Anything else counts as an overlap, so the new
/// rules go above it.
pub(super) fn may_overlap(existing: &cloudflared::Rule, new: &[&IngressRule]) -> bool {
    new.iter().any(|w| {
        if !cloudflared::host_matches(&existing.hostname, &w.hostname) {
            return false;
        }
        let Some(re) = &existing.path else {
            return true;
        };
        let theirs = cloudflared::anchored_literal_prefix(re.as_str());
        let ours = cloudflared::anchored_literal_prefix(&w.path);
        match (theirs, ours) {
            (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
            _ => true,
        }
    })
}

/// URLs to compare the routing before and after a merge with: every host the rules name (a
/// wildcard filled in, plus one no rule names) × the paths their regexes start with, with a few
/// endings, and the service's own probe paths.
pub(super) fn sample_urls(rules: &[cloudflared::Rule], wanted: &[IngressRule]) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["unlisted.example.com".into()];
    let mut prefixes: Vec<String> = vec![String::new()];
    let mut add_host = |h: &str| {
        let h = if h.is_empty() || h == "*" {
            return;
        } else if let Some(rest) = h.strip_prefix('*') {
            format!("sample{rest}")
        } else {
            h.to_owned()
        };
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for r in rules {
        add_host(&r.hostname);
        if let Some(prefix) = r
            .path
            .as_ref()
            .and_then(|re| cloudflared::anchored_literal_prefix(re.as_str()))
        {
            prefixes.push(prefix);
        }
    }
    for w in wanted {
        add_host(&w.hostname);
        prefixes.extend(cloudflared::anchored_literal_prefix(&w.path));
        if let Ok((_, path)) = cloudflared::split_url(&w.probe_url) {
            prefixes.push(path);
        }
    }
    let mut urls = Vec::new();
    for host in &hosts {
        for prefix in &prefixes {
            for ending in ["", "/", "/x", "x", "/mcp", "/health"] {
                let path = format!("{prefix}{ending}");
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                urls.push(format!("https://{host}{path}"));
            }
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

/// The merged config must validate and send each rule's probe URL to that rule (an earlier rule
/// that catches the path would make it dead: refused rather than written), and every other URL
/// to the same rule as before the merge (checked on [`sample_urls`]).
pub(super) fn check_routing(
    text: &str,
    path: &Path,
    wanted: &[IngressRule],
    old_rules: &[cloudflared::Rule],
) -> Result<(), RenderError> {
    let self_check = |message: String| RenderError::SelfCheck {
        path: path.to_path_buf(),
        message,
    };
    let config =
        Config::parse(text, &path.display().to_string()).map_err(|e| self_check(e.message))?;
    let rules = config.validate().map_err(|e| self_check(e.message))?;
    let is_wanted = |r: &cloudflared::Rule| {
        wanted.iter().any(|w| {
            r.hostname == w.hostname
                && r.path.as_ref().map(|re| re.as_str()) == Some(w.path.as_str())
                && r.service == w.service
        })
    };
    for rule in wanted {
        let Some(own) = config.rules.iter().position(|r| {
            r.hostname == rule.hostname && r.path == rule.path && r.service == rule.service
        }) else {
            return Err(self_check(format!(
                "rule {} is missing after the merge",
                rule.path
            )));
        };
        let hit =
            cloudflared::match_rule(&rules, &rule.probe_url).map_err(|e| self_check(e.message))?;
        if hit != own {
            // Not reached for a merge planned above; a bug if it is.
            return Err(self_check(format!(
                "{} goes to ingress rule #{} instead of the service's rule #{}",
                rule.probe_url,
                hit + 1,
                own + 1
            )));
        }
    }
    // Every other URL goes where it went before; the service's own URLs go to its rules.
    let wanted_rules: Vec<cloudflared::Rule> = wanted
        .iter()
        .filter_map(|w| {
            Some(cloudflared::Rule {
                hostname: w.hostname.clone(),
                path: Some(regex::Regex::new(&w.path).ok()?),
                service: w.service.clone(),
                line: None,
            })
        })
        .collect();
    let identity = |r: &cloudflared::Rule| {
        (
            r.hostname.clone(),
            r.path.as_ref().map(|re| re.as_str().to_owned()),
            r.service.clone(),
        )
    };
    for url in sample_urls(old_rules, wanted) {
        let Ok((host, url_path)) = cloudflared::split_url(&url) else {
            continue;
        };
        let (Ok(before), Ok(after)) = (
            cloudflared::match_rule(old_rules, &url),
            cloudflared::match_rule(&rules, &url),
        ) else {
            continue;
        };
        let ours = wanted_rules
            .iter()
            .any(|w| cloudflared::rule_matches(w, &host, &url_path));
        let ok = if ours {
            is_wanted(&rules[after])
        } else {
            identity(&old_rules[before]) == identity(&rules[after])
        };
        if !ok {
            return Err(self_check(format!(
                "{url} went to ingress rule #{} before the merge and would go to #{} after it",
                before + 1,
                after + 1
            )));
        }
    }
    Ok(())
}
