//! Sets of completion indexes as Indexed Jobs write them in `status.completedIndexes`:
//! ordered, merged intervals such as `1,3-5,7`.

use std::collections::BTreeSet;

/// Ordered, non-overlapping, non-adjacent intervals `[first, last]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(i32, i32)>);

impl Intervals {
    /// Reads `1,3-5,7`, dropping what is at or beyond `completions` and what is corrupt.
    pub fn parse(s: &str, completions: i32) -> Intervals {
        let mut out: Vec<(i32, i32)> = Vec::new();
        if s.is_empty() {
            return Intervals(out);
        }
        for part in s.split(',') {
            let mut ends = part.splitn(2, '-');
            let Some(Ok(first)) = ends.next().map(str::parse::<i32>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match ends.next() {
                Some(l) => match l.parse::<i32>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.1 == first - 1 => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// These intervals with `more` (any order) added.
    pub fn with(&self, more: impl IntoIterator<Item = i32>) -> Intervals {
        let extra: BTreeSet<i32> = more.into_iter().collect();
        let mut all: Vec<(i32, i32)> = self.0.clone();
        all.extend(extra.into_iter().map(|i| (i, i)));
        all.sort_unstable();
        let mut out: Vec<(i32, i32)> = Vec::with_capacity(all.len());
        for (f, l) in all {
            match out.last_mut() {
                Some(prev) if f <= prev.1 + 1 => prev.1 = prev.1.max(l),
                _ => out.push((f, l)),
            }
        }
        Intervals(out)
    }

    pub fn total(&self) -> i32 {
        self.0.iter().map(|(f, l)| l - f + 1).sum()
    }

    pub fn has(&self, i: i32) -> bool {
        let pos = self.0.partition_point(|(_, l)| *l < i);
        self.0.get(pos).is_some_and(|(f, _)| *f <= i)
    }

    /// The first `count` indexes below `completions` not in these intervals.
    pub fn first_missing(&self, count: usize, completions: i32) -> Vec<i32> {
        let mut out = Vec::with_capacity(count);
        let mut candidate = 0;
        for (f, l) in &self.0 {
            while candidate < completions && out.len() < count && candidate < *f {
                out.push(candidate);
                candidate += 1;
            }
            candidate = candidate.max(l + 1);
        }
        while candidate < completions && out.len() < count {
            out.push(candidate);
            candidate += 1;
        }
        out
    }
}

impl std::fmt::Display for Intervals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, (first, last)) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                // Two adjacent indexes are listed, not ranged: Kubernetes writes `1,2`.
                let sep = if *last == first + 1 { ',' } else { '-' };
                write!(f, "{sep}{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_merge_print() {
        let i = Intervals::parse("1,3-5,7", 10);
        assert_eq!(i.to_string(), "1,3-5,7");
        assert_eq!(i.total(), 5);
        assert!(i.has(4) && i.has(7) && !i.has(2) && !i.has(8));
        assert_eq!(i.with([2, 6]).to_string(), "1-7");
        assert_eq!(i.with([0]).to_string(), "0,1,3-5,7");
        assert_eq!(Intervals::default().with([1, 2]).to_string(), "1,2");
        // Out of range and corrupt parts are dropped.
        assert_eq!(Intervals::parse("0-3,x,8-12", 10).to_string(), "0-3,8,9");
        assert_eq!(Intervals::parse("0-3,12", 5).to_string(), "0-3");
        assert_eq!(Intervals::parse("", 5).total(), 0);
    }

    #[test]
    fn missing_indexes() {
        let i = Intervals::parse("0,2-3", 10);
        assert_eq!(i.first_missing(3, 10), vec![1, 4, 5]);
        assert_eq!(i.first_missing(10, 5), vec![1, 4]);
        assert_eq!(Intervals::default().first_missing(2, 10), vec![0, 1]);
    }
}
