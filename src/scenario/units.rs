//! Parsing of the human units a scenario is written in: durations (`250ms`, `1m30s`),
//! rates (`500/s`, `30/m`) and relative times (`+5m`, `-1h`); and "did you mean"
//! suggestions for misspelt names.

use std::time::Duration;

/// Parses `250ms`, `30s`, `1m30s`, `2h`. Zero is allowed; a bare number is not (units are
/// mandatory so `30` is never guessed to be seconds or milliseconds).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration: write e.g. `30s`, `250ms` or `1m30s`".into());
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{t}` has no unit: write e.g. `{t}s` or `{t}ms`"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{t}` is not a duration ({e}): write e.g. `30s`, `250ms` or `1m30s`"))
}

/// The highest rate one gauntlet process is asked for: above it a rate can only be a typo
/// (`1e12/s`) or a load for several processes.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;
/// The most closed-loop users, in-flight requests or connections one process holds (each is a
/// task with its buffers and, mostly, a socket): more is a typo or exhausts the machine.
pub(crate) const MAX_CONCURRENCY: u32 = 100_000;
/// The most generator threads (each an OS thread with its own runtime).
pub(crate) const MAX_THREADS: u32 = 1024;
/// The longest scenario name (it names the results folder, `<stamp>-<name>`).
pub(crate) const MAX_NAME: usize = 128;

/// Parses a rate `N/s`, `N/m` (or `/min`), `N/h`; returns requests per second.
pub(crate) fn rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some((num, unit)) = t.split_once('/') else {
        return Err(format!("`{t}` is not a rate: write e.g. `500/s` or `30/m`"));
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("`{t}` is not a rate: `{}` is not a number", num.trim()))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        u => {
            return Err(format!("`{t}`: unknown rate unit `{u}` (use `/s`, `/m` or `/h`)"));
        }
    };
    let r = n / per;
    if !r.is_finite() || r <= 0.0 {
        return Err(format!("`{t}`: a rate must be greater than zero"));
    }
    if r > MAX_RATE {
        return Err(format!(
            "`{t}` is over {MAX_RATE:.0}/s, more than one gauntlet process can send: split the load over \
             several gauntlet processes, or lower the rate"
        ));
    }
    Ok(r)
}

/// Parses a relative time `+5m` / `-1h` / `now` into signed seconds from the run start.
/// Returns `None` when `s` is not written as a relative time at all.
pub(crate) fn relative_secs(s: &str) -> Option<Result<i64, String>> {
    let t = s.trim();
    if t == "now" {
        return Some(Ok(0));
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1i64, &t[1..]),
        Some(b'-') => (-1i64, &t[1..]),
        _ => return None,
    };
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(
        duration(rest)
            .and_then(|d| i64::try_from(d.as_secs()).map(|v| sign * v).map_err(|_| format!("`{t}` is too far away"))),
    )
}

/// Parses a percentage `1%`, `0.5 %` into a fraction.
pub(crate) fn percent(s: &str) -> Option<f64> {
    s.trim().strip_suffix('%').and_then(|n| n.trim().parse::<f64>().ok()).map(|p| p / 100.0)
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1)).map(|(_, c)| c)
}

/// Edit distance counting a transposition of neighbours as one edit (`laek` → `leak`).
fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units_and_explain_mistakes() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(duration("30").unwrap_err().contains("no unit"));
        assert!(duration("10 parsecs").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(rate("500/s"), Ok(500.0));
        assert_eq!(rate("60/m"), Ok(1.0));
        assert!(rate("0/s").is_err());
        assert!(rate("5/fortnight").unwrap_err().contains("unknown rate unit"));
        assert!(rate("500").is_err());
    }

    #[test]
    fn relative_times_are_signed_seconds() {
        assert_eq!(relative_secs("+5m"), Some(Ok(300)));
        assert_eq!(relative_secs("-1h"), Some(Ok(-3600)));
        assert_eq!(relative_secs("now"), Some(Ok(0)));
        assert_eq!(relative_secs("alice"), None);
        assert!(matches!(relative_secs("+5 parsecs"), Some(Err(_))));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("duraton", ["duration", "name"]), Some("duration"));
        assert_eq!(suggest("zzzzzz", ["duration", "name"]), None);
    }
}
