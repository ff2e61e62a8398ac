//! Shrinking a failing scenario to the fewest statements that still fail.
//!
//! Delta debugging over lines: try removing chunks (halves, quarters, ...
//! single lines), from the end backwards because later statements depend
//! on earlier ones (a variable, a forked process), keeping any removal
//! after which the scenario still fails the same way. Candidates that no
//! longer parse (a statement left using a removed variable) are simply
//! rejected by the predicate.

/// Shrinks `lines` while `still_fails` holds, calling it at most `budget`
/// times. Returns the smallest failing list found; it is 1-minimal (no
/// single line can be removed) when the budget sufficed.
pub fn shrink(
    mut lines: Vec<String>,
    budget: usize,
    mut still_fails: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut tries = 0usize;
    let mut chunk = (lines.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut end = lines.len();
        while end > 0 {
            let start = end.saturating_sub(chunk);
            if tries >= budget {
                return lines;
            }
            tries += 1;
            let candidate: Vec<String> = lines[..start]
                .iter()
                .chain(&lines[end..])
                .cloned()
                .collect();
            if !candidate.is_empty() && still_fails(&candidate) {
                lines = candidate;
                removed_any = true;
                end = start.min(lines.len());
            } else {
                end = start;
            }
        }
        if chunk > 1 {
            chunk /= 2;
        } else if !removed_any {
            return lines;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_exactly_the_lines_needed() {
        let input: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        // Fails while both s7 and s31 are there, and s31 needs s3 before it.
        let out = shrink(input, 10_000, |c| {
            let has = |s: &str| c.iter().any(|l| l == s);
            has("s7") && has("s31") && has("s3")
        });
        assert_eq!(out, lines(&["s3", "s7", "s31"]));
    }

    #[test]
    fn respects_the_budget() {
        let input: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let mut calls = 0;
        let out = shrink(input.clone(), 5, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 5);
        assert_eq!(out, input);
    }

    #[test]
    fn never_returns_an_empty_scenario() {
        let out = shrink(lines(&["a", "b"]), 100, |_| true);
        assert_eq!(out.len(), 1);
    }
}
