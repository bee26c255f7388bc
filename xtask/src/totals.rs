//! The totals of libtest's `test result:` lines, counted by `test` (the host's run) and by
//! `vm-test` (each guest's console).

/// Totals of cargo test's `test result:` lines.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) ignored: u64,
}

impl Totals {
    /// Add one line if it is a `test result:` line.
    pub(crate) fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut it = part.split_whitespace();
            let (Some(n), Some(what)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn totals_add_up_test_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line("test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s");
        t.add_line("running 3 tests");
        assert_eq!(t, Totals { passed: 5, failed: 1, ignored: 1 });
    }
}
