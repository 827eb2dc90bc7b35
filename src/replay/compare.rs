//! Replayed answers against recorded ones: a body digest with the declared noisy fields
//! masked (`compare.noisy`), so a timestamp or a request id does not read as drift.
//!
//! Without noisy fields, the digest is the capture's own whole-body hash
//! ([`crate::capture::body_hash`]), so bodies of any recorded length compare. With them, the
//! recorded body must have been kept whole by the capture reader (its first 4 KiB): a
//! longer one is not compared.

use crate::capture::{Response, body_hash};
use crate::scenario::{Compare, Noisy};

/// What masked text is replaced with.
const MASK: &str = "\u{2591}";

/// The digest of a body under `c`.
pub fn digest(c: &Compare, body: &[u8]) -> u64 {
    if c.noisy.is_empty() {
        return body_hash(body);
    }
    let mut text = String::from_utf8_lossy(body).into_owned();
    for n in &c.noisy {
        if let Noisy::Regex(re) = n {
            if re.is_match(&text) {
                text = re.replace_all(&text, MASK).into_owned();
            }
        }
    }
    let paths: Vec<&[String]> = c
        .noisy
        .iter()
        .filter_map(|n| match n {
            Noisy::Json(p) => Some(p.as_slice()),
            Noisy::Regex(_) => None,
        })
        .collect();
    if !paths.is_empty() {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) {
            for p in &paths {
                mask(&mut v, p);
            }
            // Re-serialised with sorted keys: key order and spacing do not count either.
            text = v.to_string();
        }
    }
    body_hash(text.as_bytes())
}

/// The digest of a recorded answer's body under `c`, when it can be compared.
pub fn recorded(c: &Compare, r: &Response) -> Option<u64> {
    if c.noisy.is_empty() {
        return Some(r.body_hash);
    }
    (r.body_prefix.len() as u64 == r.body_len).then(|| digest(c, &r.body_prefix))
}

/// Replaces the field(s) at `path` in `v` with a placeholder.
fn mask(v: &mut serde_json::Value, path: &[String]) {
    let Some((head, rest)) = path.split_first() else {
        *v = serde_json::Value::String(MASK.to_string());
        return;
    };
    match v {
        serde_json::Value::Object(m) if head == "*" => m.values_mut().for_each(|x| mask(x, rest)),
        serde_json::Value::Object(m) => {
            if let Some(x) = m.get_mut(head.as_str()) {
                mask(x, rest);
            }
        }
        serde_json::Value::Array(a) if head == "*" => a.iter_mut().for_each(|x| mask(x, rest)),
        serde_json::Value::Array(a) => {
            if let Some(x) = head.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                mask(x, rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(noisy: Vec<Noisy>) -> Compare {
        Compare { body: Some(true), noisy }
    }

    fn json(p: &str) -> Noisy {
        Noisy::Json(p.split('.').map(str::to_string).collect())
    }

    #[test]
    fn without_noisy_fields_the_digest_is_the_captures_body_hash() {
        let c = compare(Vec::new());
        assert_eq!(digest(&c, b"hello"), body_hash(b"hello"));
        assert_ne!(digest(&c, b"hello"), digest(&c, b"hellO"));
    }

    #[test]
    fn json_fields_are_masked_at_any_depth_and_with_wildcards() {
        let c = compare(vec![json("served_at"), json("items.*.id")]);
        let a = br#"{"served_at":"2026-12-01T10:00:00Z","items":[{"id":1,"n":"a"},{"id":2,"n":"b"}]}"#;
        let b = br#"{ "items":[{"n":"a","id":7},{"id":9,"n":"b"}], "served_at":"2026-12-02T11:11:11Z" }"#;
        assert_eq!(digest(&c, a), digest(&c, b));
        let other = br#"{"served_at":"x","items":[{"id":1,"n":"a"},{"id":2,"n":"CHANGED"}]}"#;
        assert_ne!(digest(&c, a), digest(&c, other));
    }

    #[test]
    fn regexes_mask_text_bodies() {
        let c = compare(vec![Noisy::Regex(regex::Regex::new(r"req-[0-9a-f]+").unwrap())]);
        assert_eq!(digest(&c, b"ok req-12ab done"), digest(&c, b"ok req-ffff done"));
        assert_ne!(digest(&c, b"ok req-12ab done"), digest(&c, b"no req-12ab done"));
    }

    #[test]
    fn a_recorded_body_not_kept_whole_is_not_compared_under_noisy_fields() {
        let r = |prefix: &[u8], len: u64| Response {
            status: 200,
            headers: Vec::new(),
            body_len: len,
            body_hash: body_hash(prefix),
            body_prefix: prefix.to_vec(),
            ts_ns: 0,
        };
        assert_eq!(recorded(&compare(Vec::new()), &r(b"abc", 9000)), Some(body_hash(b"abc")));
        assert_eq!(recorded(&compare(vec![json("a")]), &r(b"abc", 9000)), None);
        let c = compare(vec![json("a")]);
        assert_eq!(recorded(&c, &r(br#"{"a":1}"#, 7)), Some(digest(&c, br#"{"a":2}"#)));
    }
}
