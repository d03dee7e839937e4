//! String similarity for "did you mean" suggestions (unknown fields, unknown `explain` input).

/// Levenshtein edit distance over characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// 1.0 for equal strings, 0.0 for nothing in common (normalised edit distance).
pub fn edit_similarity(a: &str, b: &str) -> f64 {
    let len = a.chars().count().max(b.chars().count());
    if len == 0 {
        return 1.0;
    }
    1.0 - levenshtein(a, b) as f64 / len as f64
}

/// Dice coefficient of character trigrams (lowercased, padded): robust for phrases of different
/// lengths, where edit distance is dominated by the length difference.
pub fn trigram_similarity(a: &str, b: &str) -> f64 {
    fn grams(s: &str) -> Vec<[char; 3]> {
        let padded: Vec<char> = format!("  {} ", s.to_lowercase()).chars().collect();
        let mut g: Vec<[char; 3]> = padded.windows(3).map(|w| [w[0], w[1], w[2]]).collect();
        g.sort_unstable();
        g
    }
    let (ga, gb) = (grams(a), grams(b));
    if ga.is_empty() || gb.is_empty() {
        return 0.0;
    }
    // Multiset intersection of two sorted lists.
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < ga.len() && j < gb.len() {
        match ga[i].cmp(&gb[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * common as f64 / (ga.len() + gb.len()) as f64
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(
            did_you_mean("proxy_prot", ["proxy_port", "service"]),
            Some("proxy_port")
        );
        assert_eq!(did_you_mean("zzzzzz", ["proxy_port", "service"]), None);
        assert!(trigram_similarity("invalid host", "Invalid Host header") > 0.6);
        assert!(trigram_similarity("invalid host", "task group") < 0.3);
    }
}
