//! Finding personal values inside other text in linear time. Text and values are compared in
//! one canonical spelling: ASCII lower case, with percent-escapes of printable ASCII decoded,
//! once or twice (`%40`, `%2B`, `%2540`), so `ADA%40EXAMPLE.COM` is found as `ada@example.com`.
//! Matches are leftmost-longest, so an address wins over a shorter value it contains.

use std::cmp::Reverse;
use std::ops::Range;

use aho_corasick::{AhoCorasick, BuildError, MatchKind};

/// Up to this many values (an ordinary event has one to five) are found by a direct scan per
/// value: building an automaton costs tens of microseconds, more than the whole event's
/// normalisation. Past it, one automaton keeps the cost linear however many values there are.
const FEW_VALUES: usize = 16;

/// The values to find, in canonical spelling, and each one's digest.
pub(super) struct Embedded {
    search: Search,
    digests: Vec<String>,
    /// The shortest pattern's length: a shorter text (most of an event's) holds none, and
    /// canonical spelling never lengthens a text, so it is skipped without a copy.
    shortest: usize,
}

enum Search {
    Few(Vec<String>),
    Automaton(AhoCorasick),
}

impl Embedded {
    /// `values` are `(plain, digest)`; when two share a canonical spelling, the first one's
    /// digest is used. `None` when there is nothing to search for.
    pub(super) fn new<'a>(
        values: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Embedded>, BuildError> {
        let mut seen = std::collections::HashSet::new();
        let (mut patterns, mut digests) = (Vec::new(), Vec::new());
        for (plain, digest) in values {
            let pattern = canonical(plain).map_or_else(|| plain.to_owned(), |c| c.text);
            if seen.insert(pattern.clone()) {
                patterns.push(pattern);
                digests.push(digest.to_owned());
            }
        }
        let shortest = patterns.iter().map(String::len).min().unwrap_or(0);
        let search = match patterns.len() {
            0 => return Ok(None),
            n if n <= FEW_VALUES => Search::Few(patterns),
            _ => Search::Automaton(
                AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns)?,
            ),
        };
        Ok(Some(Embedded { search, digests, shortest }))
    }

    /// Calls `each` with every byte range of `text` that spells a value, in order and not
    /// overlapping, and that value's digest.
    pub(super) fn find(&self, text: &str, mut each: impl FnMut(Range<usize>, &str)) {
        if text.len() < self.shortest {
            return;
        }
        let spelled = canonical(text);
        let haystack = spelled.as_ref().map_or(text, |c| c.text.as_str());
        // A canonical byte maps to where its character (or its escape) starts in `text`, so a
        // range of whole characters maps to a range of whole characters.
        let original = |range: Range<usize>| match &spelled {
            Some(c) => c.starts[range.start]..c.starts[range.end],
            None => range,
        };
        match &self.search {
            Search::Automaton(automaton) => {
                for found in automaton.find_iter(haystack) {
                    each(original(found.range()), &self.digests[found.pattern().as_usize()]);
                }
            }
            Search::Few(patterns) => find_few(patterns, haystack, |range, id| {
                each(original(range), &self.digests[id]);
            }),
        }
    }
}

/// Leftmost-longest matches of a few patterns: each pattern's next occurrence is kept and
/// searched again only once a match passes it, so each pattern scans the text once.
fn find_few(patterns: &[String], haystack: &str, mut each: impl FnMut(Range<usize>, usize)) {
    let find_from =
        |id: usize, from: usize| haystack[from..].find(patterns[id].as_str()).map(|at| at + from);
    let mut next: Vec<Option<usize>> = (0..patterns.len()).map(|id| find_from(id, 0)).collect();
    loop {
        let leftmost_longest = next
            .iter()
            .enumerate()
            .filter_map(|(id, start)| Some((start.as_ref().copied()?, id)))
            .min_by_key(|(start, id)| (*start, Reverse(patterns[*id].len())));
        let Some((start, id)) = leftmost_longest else { return };
        let end = start + patterns[id].len();
        each(start..end, id);
        for (other, slot) in next.iter_mut().enumerate() {
            if slot.is_some_and(|at| at < end) {
                *slot = find_from(other, end);
            }
        }
    }
}

/// A text in canonical spelling, with where each of its bytes came from.
struct Canonical {
    text: String,
    /// `starts[i]`: the offset in the original text of canonical byte `i`; one more entry,
    /// the original's length, for the end of the last byte.
    starts: Vec<usize>,
}

/// `None` when `text` is already canonical (no `%`, no ASCII capital): the common case, left
/// without a copy.
fn canonical(text: &str) -> Option<Canonical> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|byte| *byte == b'%' || byte.is_ascii_uppercase()) {
        return None;
    }
    let (mut spelled, mut starts) = (Vec::with_capacity(bytes.len()), Vec::new());
    let mut at = 0;
    while at < bytes.len() {
        let (byte, width) = unescape(&bytes[at..]).unwrap_or((bytes[at], 1));
        spelled.push(byte.to_ascii_lowercase());
        starts.push(at);
        at += width;
    }
    starts.push(bytes.len());
    // Only ASCII bytes were replaced, by ASCII bytes, so this is still UTF-8; were it not, the
    // text is searched as it is.
    String::from_utf8(spelled).ok().map(|text| Canonical { text, starts })
}

/// The printable ASCII character a `%XX` (or `%25XX`, a `%XX` encoded again) at the start of
/// `bytes` stands for, and the escape's length.
fn unescape(bytes: &[u8]) -> Option<(u8, usize)> {
    let printable = |high: u8, low: u8| {
        let value = (char::from(high).to_digit(16)? << 4) | char::from(low).to_digit(16)?;
        u8::try_from(value).ok().filter(|byte| (0x20..0x7f).contains(byte))
    };
    if let [b'%', b'2', b'5', high, low, ..] = bytes
        && let Some(byte) = printable(*high, *low)
    {
        return Some((byte, 5));
    }
    match bytes {
        [b'%', high, low, ..] => printable(*high, *low).map(|byte| (byte, 3)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(embedded: &Embedded, text: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        embedded.find(text, |range, digest| found.push((text[range].to_owned(), digest.into())));
        found
    }

    #[test]
    fn canonical_spelling_folds_case_and_escapes() {
        let spelled = canonical("Ada%40X.io %252B1 %zz é%41").unwrap();
        assert_eq!(spelled.text, "ada@x.io +1 %zz éa");
        assert_eq!(spelled.starts.len(), spelled.text.len() + 1);
        assert!(canonical("already plain @ é").is_none());
    }

    #[test]
    fn the_scan_and_the_automaton_find_the_same_leftmost_longest_spellings() {
        let mut values: Vec<(String, String)> = ["bob@example.com", "example.com", "b@ex", "+1555"]
            .iter()
            .map(|v| (v.to_string(), format!("<{v}>")))
            .collect();
        let text = "x BOB%40example.com, b@example.com; %2B1555 and %252b1555 éexample.COM";
        let few = Embedded::new(values.iter().map(|(p, d)| (p.as_str(), d.as_str())));
        let few = few.unwrap().unwrap();
        assert!(matches!(few.search, Search::Few(_)));
        values.extend((0..FEW_VALUES).map(|i| (format!("filler{i}"), String::new())));
        let many = Embedded::new(values.iter().map(|(p, d)| (p.as_str(), d.as_str())));
        let many = many.unwrap().unwrap();
        assert!(matches!(many.search, Search::Automaton(_)));
        let expected = [
            ("BOB%40example.com", "<bob@example.com>"),
            ("b@ex", "<b@ex>"),
            ("%2B1555", "<+1555>"),
            ("%252b1555", "<+1555>"),
            ("example.COM", "<example.com>"),
        ]
        .map(|(s, d)| (s.to_owned(), d.to_owned()));
        assert_eq!(matches(&few, text), expected);
        assert_eq!(matches(&many, text), expected);
    }
}
